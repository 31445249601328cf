"""The heavy metric machinery a session shares between tasks: loaded on first use, once per session."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clue.metrics.bertscore import BertScoreConfig, BertScorer
from clue.metrics.umls import EntityExtractor, ScispacyConfig
from clue.store.fingerprint import file_sha256, folder_fingerprint, memo_key, package_version
from clue.store.sqlite import canonical

if TYPE_CHECKING:
    from clue.store.sqlite import GenerationStore


MEMO_VERSION = 1  # bump when clue's own BERTScore/UMLS code changes what it computes


@dataclass
class Scorers:
    rouge_stemmer: bool = False  # CLUE's numbers are unstemmed
    bertscore_config: BertScoreConfig = field(default_factory=BertScoreConfig)
    umls_config: ScispacyConfig | None = field(default_factory=ScispacyConfig)  # None: UMLS F1 switched off
    cache_dir: Path = Path(".clue-cache")
    _bertscore: BertScorer | None = None
    _umls: EntityExtractor | None = None
    loads: dict[str, int] = field(default_factory=dict)
    store: GenerationStore | None = None  # memoises model-based metric values across runs (None: no memo)
    # a stand-in BERTScore model chosen by the configuration (clue.models.tiny.bertscore_stand_in): builds its folder on
    # first use and gives its layer; None: bertscore_config.model is loaded as named
    bertscore_build: Callable[[], tuple[Path, int]] | None = None
    memo_hits: int = 0
    _fingerprints: dict[str, dict[str, Any]] = field(default_factory=dict)

    def bertscore_pairs(self, candidates: Sequence[str], references: Sequence[str]) -> list[tuple[float, float, float]]:
        """(P, R, F1) per pair: memoised values where the store has them, the BERTScore model only for the rest."""
        identity = self._bertscore_identity()
        keys = [memo_key(identity, c, r) for c, r in zip(candidates, references, strict=True)]

        def compute(indices: list[int]) -> list[list[float]]:
            pairs = self.bertscore().score([candidates[i] for i in indices], [references[i] for i in indices])
            return [list(triple) for triple in pairs]

        found = self._memoised(keys, compute)
        return [(float(found[k][0]), float(found[k][1]), float(found[k][2])) for k in keys]

    def concepts(self, texts: Sequence[str]) -> list[set[str]]:
        """UMLS concept names per text, memoised like BERTScore."""
        identity = self._umls_identity()
        keys = [memo_key(identity, t) for t in texts]
        found = self._memoised(
            keys, lambda indices: [sorted(c) for c in self.umls().extract([texts[i] for i in indices])]
        )
        return [set(found[k]) for k in keys]

    def _memoised(self, keys: list[str], compute: Callable[[list[int]], Sequence[Any]]) -> dict[str, Any]:
        """The value of every key: from the store's memo where it has one, else computed (once per distinct key,
        from its first occurrence's index) and memoised."""
        found = self.store.memo_get(keys) if self.store else {}
        self.memo_hits += sum(k in found for k in keys)
        first: dict[str, int] = {}
        for i, key in enumerate(keys):
            if key not in found:
                first.setdefault(key, i)
        if first:
            new = dict(zip(first, compute(list(first.values())), strict=True))
            if self.store:
                self.store.memo_put(new)
            found.update(new)
        return found

    def _bertscore_identity(self) -> dict[str, Any]:
        """What determines a BERTScore value, known without loading the model: the config, and the files'
        content hashes when the model is a local folder (the offline stand-in is built here if needed)."""
        identity: dict[str, Any] = {**self.bertscore_config.fingerprint(), "memo": MEMO_VERSION}
        folder = self._bertscore_location()
        if folder.is_dir() and self.store is not None:
            identity["files"] = folder_fingerprint(folder, self.store)
        return identity

    def _bertscore_location(self) -> Path:
        """The BERTScore model's folder or hub id (a stand-in is built on first use)."""
        if self.bertscore_build is None:
            return Path(self.bertscore_config.model)
        return self.bertscore_build()[0]

    def _umls_identity(self) -> dict[str, Any]:
        assert self.umls_config is not None
        config = self.umls_config
        identity: dict[str, Any] = {
            "memo": MEMO_VERSION,
            "spacy_model": config.spacy_model,
            "linker": config.linker,
            "resolve_abbreviations": config.resolve_abbreviations,
            "versions": [package_version("scispacy"), package_version("spacy"), package_version(config.spacy_model)],
        }
        if self.store is not None:
            if Path(config.linker).is_file():
                identity["linker_sha256"] = file_sha256(Path(config.linker), self.store)
            elif Path(config.linker).is_dir():
                identity["linker_files"] = folder_fingerprint(Path(config.linker), self.store)
            if Path(config.spacy_model).is_dir():
                identity["model_files"] = folder_fingerprint(Path(config.spacy_model), self.store)
        return identity

    def bertscore(self) -> BertScorer:
        if self._bertscore is None:
            config = self.bertscore_config
            if self.bertscore_build is not None:
                # resolved for loading only: bertscore_config stays as configured, so the metric's fingerprint
                # and memo keys are the same before and after the model is loaded
                folder, layer = self.bertscore_build()
                config = BertScoreConfig(str(folder), layer, config.batch_size, config.device)
            self.loads["bertscore"] = self.loads.get("bertscore", 0) + 1
            self._bertscore = BertScorer(config)
        return self._bertscore

    def umls(self) -> EntityExtractor:
        if self._umls is None:
            from clue.metrics.umls import ScispacyExtractor, prepare_offline_config

            assert self.umls_config is not None
            self.loads["umls"] = self.loads.get("umls", 0) + 1
            self._umls = ScispacyExtractor(prepare_offline_config(self.umls_config, self.cache_dir))
        return self._umls

    def bertscore_fingerprint(self) -> dict[str, str]:
        """The BERTScore metric's fingerprint in results and baselines: the configuration and, for a local folder
        (or the built stand-in), a digest of its files' contents, so a baseline scored with another model of the
        same name is refused with that difference named."""
        if "bertscore" not in self._fingerprints:  # once per session: a model folder is hashed once
            fingerprint = self.bertscore_config.fingerprint()
            folder = self._bertscore_location()
            if folder.is_dir():
                fingerprint["model_files_sha256"] = _digest(folder_fingerprint(folder, self.store))
            self._fingerprints["bertscore"] = fingerprint
        return dict(self._fingerprints["bertscore"])

    def umls_fingerprint(self) -> dict[str, Any]:
        """The UMLS metric's fingerprint: the configuration and the contents of a local KB file or index folder
        and of a local spaCy model folder (the "ruler" stand-in is built from the KB: its hash covers it)."""
        if self.umls_config is None:
            return {}
        if "umls" in self._fingerprints:
            return dict(self._fingerprints["umls"])
        config = self.umls_config
        fingerprint: dict[str, Any] = {"spacy_model": config.spacy_model, "linker": config.linker}
        for key, value in (("linker", config.linker), ("spacy_model", config.spacy_model)):
            location = Path(value)
            if location.is_file():
                fingerprint[f"{key}_sha256"] = file_sha256(location, self.store)
            elif location.is_dir():
                fingerprint[f"{key}_files_sha256"] = _digest(folder_fingerprint(location, self.store))
        self._fingerprints["umls"] = fingerprint
        return dict(fingerprint)


def _digest(files: dict[str, str]) -> str:
    """One hash over a folder's file names and content hashes."""
    return hashlib.sha256(canonical(files).encode()).hexdigest()
