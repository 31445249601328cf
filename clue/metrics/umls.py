"""UMLS-entity F1: the sets of concepts a scispacy pipeline finds in the prediction and in the reference.

As in CLUE (eval/utils.py, compute_UMLS_F1): entities from a scispacy NER model (`en_core_sci_sm` by default)
are linked with scispacy's EntityLinker; each entity contributes the canonical name of its best-ranked concept;
P/R/F1 are computed over the two sets. An empty set on either side scores 0.0 (CLUE's convention: no concepts,
no evidence of agreement).

The extractor is pluggable (anything with `extract(texts) -> list[set[str]]` and a `fingerprint()`), and the
scispacy one accepts a custom knowledge base (a scispacy KB JSON Lines file plus the TF-IDF/ANN index built from
it) instead of UMLS, which is how the tests run offline. The real models install with

    pip install -e ".[umls]"
    pip install https://s3-us-west-2.amazonaws.com/ai2-s2-scispacy/releases/v0.5.4/en_core_sci_sm-0.5.4.tar.gz

and the UMLS linker downloads its ~1 GB index on first use (cached under ~/.scispacy).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

from clue.errors import ClueError
from clue.types import MetricSpec


class EntityExtractor(Protocol):
    def extract(self, texts: Sequence[str]) -> list[set[str]]: ...

    def fingerprint(self) -> dict[str, str]: ...


def set_prf(predicted: Iterable[str], reference: Iterable[str]) -> tuple[float, float, float]:
    pred, ref = set(predicted), set(reference)
    if not pred or not ref:
        return 0.0, 0.0, 0.0
    hits = len(pred & ref)
    precision, recall = hits / len(pred), hits / len(ref)
    return precision, recall, (0.0 if hits == 0 else 2 * precision * recall / (precision + recall))


@dataclass(frozen=True)
class ScispacyConfig:
    spacy_model: str = "en_core_sci_sm"  # a package name or a folder saved with nlp.to_disk
    linker: str = "umls"  # a scispacy linker name (umls, mesh, rxnorm, ...) or a folder from build_custom_linker
    # CLUE's get_UMLS_entities passes resolve_abbreviations=True to the linker but never adds scispacy's
    # AbbreviationDetector, so the linker sees no long forms and links the text as written: off reproduces that
    resolve_abbreviations: bool = False
    batch_size: int = 64


class ScispacyExtractor:
    """spaCy + scispacy's EntityLinker. Loaded once per session; texts are processed with nlp.pipe."""

    def __init__(self, config: ScispacyConfig):
        try:
            import spacy
            from scispacy.linking import EntityLinker  # noqa: F401 - registers the "scispacy_linker" factory
        except ImportError:
            raise ClueError(
                'UMLS-entity F1 needs scispacy: pip install -e ".[umls]" (see clue/metrics/umls.py)'
            ) from None
        self.config = config
        try:
            self.nlp = spacy.load(config.spacy_model)
        except OSError as exc:
            raise ClueError(
                f"scispacy model {config.spacy_model!r} is not installed ({exc}); install en_core_sci_sm "
                "(see clue/metrics/umls.py) or pass --clue-umls-spacy-model PATH"
            ) from None
        linker_config: dict[str, Any] = {"resolve_abbreviations": config.resolve_abbreviations}
        custom = Path(config.linker)
        if custom.is_dir():
            linker_config["linker_name"] = register_custom_linker(custom)
        else:
            linker_config["linker_name"] = config.linker
        if config.resolve_abbreviations and "abbreviation_detector" not in self.nlp.pipe_names:
            from scispacy.abbreviation import AbbreviationDetector  # noqa: F401 - registers the factory

            self.nlp.add_pipe("abbreviation_detector")
        self.linker = self.nlp.add_pipe("scispacy_linker", config=linker_config)

    def extract(self, texts: Sequence[str]) -> list[set[str]]:
        import warnings

        out = []
        kb = self.linker.kb
        with warnings.catch_warnings():
            # scispacy's AbbreviationDetector warns (W036) on every doc without an abbreviation pattern match
            warnings.filterwarnings("ignore", message=r".*\[W036\]")
            docs = list(self.nlp.pipe(list(texts), batch_size=self.config.batch_size))
        for doc in docs:
            names = set()
            for ent in doc.ents:
                if ent._.kb_ents:
                    names.add(kb.cui_to_entity[ent._.kb_ents[0][0]].canonical_name)
            out.append(names)
        return out

    def fingerprint(self) -> dict[str, str]:
        meta = getattr(self.nlp, "meta", {})
        return {
            "extractor": "scispacy",
            "spacy_model": f"{self.config.spacy_model} {meta.get('version', '?')}",
            "linker": self.config.linker,
            "scispacy": metadata.version("scispacy"),
        }


def build_custom_linker(kb_jsonl: Path, out_dir: Path, *, min_df: int = 1) -> Path:
    """Build the candidate-generation index for a custom KB (scispacy's JSON Lines KB format) into `out_dir`.

    Writes the four artefacts scispacy's CandidateGenerator loads (TF-IDF vectorizer, alias vectors, alias list,
    nmslib HNSW index), as `scispacy.candidate_generation.create_tfidf_ann_index` does. We build them ourselves
    because scispacy 0.6 refuses to on Python >= 3.11 (it stores the vectors as float16 sparse matrices, which
    scipy >= 1.11 dropped); we store float32, which its loader casts to anyway. `min_df` is 1 instead of
    scispacy's 10, which would empty the n-gram vocabulary of a small KB.
    """
    import json

    import joblib
    import nmslib
    import numpy
    import scipy.sparse
    from scispacy.linking_utils import KnowledgeBase
    from sklearn.feature_extraction.text import TfidfVectorizer

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "kb.jsonl").write_bytes(kb_jsonl.read_bytes())
    kb = KnowledgeBase(str(out_dir / "kb.jsonl"))
    aliases = list(kb.alias_to_cuis.keys())
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 3), min_df=min_df, dtype=numpy.float32)
    vectors = vectorizer.fit_transform(aliases)
    non_empty = numpy.asarray(vectors.sum(axis=1) != 0).reshape(-1)  # nmslib crashes on all-zero vectors
    aliases = [a for a, keep in zip(aliases, non_empty, strict=True) if keep]
    vectors = vectors[non_empty]
    joblib.dump(vectorizer, out_dir / "tfidf_vectorizer.joblib")
    (out_dir / "concept_aliases.json").write_text(json.dumps(aliases))
    scipy.sparse.save_npz(out_dir / "tfidf_vectors_sparse.npz", vectors.astype(numpy.float32))
    index = nmslib.init(method="hnsw", space="cosinesimil_sparse", data_type=nmslib.DataType.SPARSE_VECTOR)
    index.addDataPointBatch(vectors)
    index.createIndex({"M": 100, "indexThreadQty": 2, "efConstruction": 2000, "post": 0}, print_progress=False)
    index.saveIndex(str(out_dir / "nmslib_index.bin"))
    return out_dir


def register_custom_linker(folder: Path) -> str:
    """Make a folder from build_custom_linker known to scispacy under its own name; returns that name."""
    from scispacy import candidate_generation, linking_utils

    name = f"clue-custom-{folder.resolve()}"
    paths = candidate_generation.LinkerPaths(
        ann_index=str(folder / "nmslib_index.bin"),
        tfidf_vectorizer=str(folder / "tfidf_vectorizer.joblib"),
        tfidf_vectors=str(folder / "tfidf_vectors_sparse.npz"),
        concept_aliases_list=str(folder / "concept_aliases.json"),
    )
    kb_path = str(folder / "kb.jsonl")

    class _CustomKB(linking_utils.KnowledgeBase):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(kb_path)

    candidate_generation.DEFAULT_PATHS[name] = paths
    candidate_generation.DEFAULT_KNOWLEDGE_BASES[name] = _CustomKB
    return name


def prepare_offline_config(config: ScispacyConfig, cache_dir: Path) -> ScispacyConfig:
    """Resolve the offline forms: a KB file as `linker` gets its index built (cached by content hash), and
    `spacy_model = "ruler"` becomes a blank English pipeline with an EntityRuler over the KB's aliases, the
    stand-in for en_core_sci_sm's NER that the embedded default and the tests use."""
    import json

    from clue.store.fingerprint import file_sha256
    from clue.util.files import build_folder

    linker = Path(config.linker)
    if not linker.is_file():
        return config
    folder = cache_dir / "umls" / file_sha256(linker)[:16]
    index = build_folder(folder / "linker", lambda tmp: build_custom_linker(linker, tmp))
    spacy_model = config.spacy_model
    if spacy_model == "ruler":
        import spacy

        pipeline = folder / "ruler-pipeline"
        if not pipeline.is_dir():
            nlp = spacy.blank("en")
            ruler = nlp.add_pipe("entity_ruler", config={"phrase_matcher_attr": "LOWER"})
            aliases = {
                a
                for line in linker.read_text().splitlines()
                if line.strip()
                for a in json.loads(line).get("aliases", [])
            }
            ruler.add_patterns([{"label": "ENTITY", "pattern": a} for a in sorted(aliases)])
            nlp.to_disk(pipeline)
        spacy_model = str(pipeline)
    return ScispacyConfig(spacy_model, str(index), config.resolve_abbreviations, config.batch_size)


def metric_specs(fingerprint: dict[str, str]) -> tuple[MetricSpec, ...]:
    return (
        MetricSpec(
            "umls_f1", "F1 over the sets of linked UMLS concepts (scispacy)", fingerprint=fingerprint, bounds=(0.0, 1.0)
        ),
        MetricSpec(
            "umls_precision", "precision over linked concepts", gate=False, fingerprint=fingerprint, bounds=(0.0, 1.0)
        ),
        MetricSpec(
            "umls_recall", "recall over linked concepts", gate=False, fingerprint=fingerprint, bounds=(0.0, 1.0)
        ),
    )
