"""The heavy metric machinery a session shares between tasks: loaded on first use, once per session."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clue.metrics.bertscore import BertScoreConfig, BertScorer
from clue.metrics.umls import EntityExtractor, ScispacyConfig


@dataclass
class Scorers:
    rouge_stemmer: bool = True
    bertscore_config: BertScoreConfig = field(default_factory=BertScoreConfig)
    umls_config: ScispacyConfig | None = field(default_factory=ScispacyConfig)  # None: UMLS F1 switched off
    cache_dir: Path = Path(".clue-cache")
    _bertscore: BertScorer | None = None
    _umls: EntityExtractor | None = None
    loads: dict[str, int] = field(default_factory=dict)

    def bertscore(self) -> BertScorer:
        if self._bertscore is None:
            config = self.bertscore_config
            if config.model == "tiny-bert":  # the offline stand-in for SciBERT used by the embedded default
                from clue.tiny import build_tiny_bert, tiny_model_dir

                path = build_tiny_bert(tiny_model_dir(self.cache_dir, 0, "bert"))
                config = BertScoreConfig(str(path), 2, config.batch_size, config.device)
                self.bertscore_config = config
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

    def umls_fingerprint(self) -> dict[str, Any]:
        if self.umls_config is None:
            return {}
        return {"spacy_model": self.umls_config.spacy_model, "linker": self.umls_config.linker}
