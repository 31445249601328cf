"""BERTScore with the `bert-score` package: per-sample precision, recall and F1.

CLUE called `bert_score.score(..., lang="en-sci")`, which bert-score maps to `allenai/scibert_scivocab_uncased`
with its layer 8: that is the default here (it needs the model from the Hugging Face hub or a local copy: pass a
local folder with `--clue-bertscore-model`). The scorer is created once per session (bert_score.score reloads
the model on every call) and runs batched, on the GPU when there is one.

Inputs are truncated to the model's position limit (512 for SciBERT), as the bert-score fork CLUE installs does:
`allenai/scibert_scivocab_uncased` ships no `model_max_length`, and bert-score 0.3.13 then asks the tokenizer to
truncate at transformers' "no limit" sentinel, which fails (`OverflowError: int too big to convert`).

Empty candidates or references get 0.0, which is what bert-score itself assigns them; we do it ourselves because
bert-score 0.3.13's empty-string path calls a tokenizer method that transformers 5 removed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata

from clue.errors import ClueError, ConfigError
from clue.types import MetricSpec

SCIBERT = "allenai/scibert_scivocab_uncased"
SCIBERT_LAYER = 8


@dataclass(frozen=True)
class BertScoreConfig:
    model: str = SCIBERT
    num_layers: int | None = SCIBERT_LAYER
    batch_size: int = 64
    device: str | None = None

    def fingerprint(self) -> dict[str, str]:
        return {
            "model": self.model,
            "layer": str(self.num_layers),
            "idf": "off",
            "rescale_with_baseline": "off",
            "package": f"bert-score {metadata.version('bert-score')}",
        }


class BertScorer:
    def __init__(self, config: BertScoreConfig):
        import bert_score
        import torch

        self.config = config
        device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            self._scorer = bert_score.BERTScorer(
                model_type=config.model, num_layers=config.num_layers, batch_size=config.batch_size, device=device
            )
        except AssertionError as exc:  # bert-score asserts the layer is one the model has
            raise ConfigError(f"--clue-bertscore-layers {config.num_layers}: {exc}") from None
        except (OSError, ValueError, KeyError) as exc:
            raise ClueError(
                f"BERTScore model {config.model!r} cannot be loaded ({exc}); pass a local folder with "
                "--clue-bertscore-model (and --clue-bertscore-layers if it is not a model bert-score knows)"
            ) from None
        limit_tokenizer_to_positions(self._scorer._tokenizer, self._scorer._model)

    def score(self, candidates: Sequence[str], references: Sequence[str]) -> list[tuple[float, float, float]]:
        """(P, R, F1) per pair."""
        if len(candidates) != len(references):
            raise ValueError(f"bertscore: {len(candidates)} candidates for {len(references)} references")
        out: list[tuple[float, float, float]] = [(0.0, 0.0, 0.0)] * len(candidates)
        keep = [i for i, (c, r) in enumerate(zip(candidates, references, strict=True)) if c.strip() and r.strip()]
        if keep:
            p, r, f = self._scorer.score([candidates[i] for i in keep], [references[i] for i in keep])
            for j, i in enumerate(keep):
                triple = (float(p[j]), float(r[j]), float(f[j]))
                if not all(math.isfinite(v) for v in triple):
                    raise ClueError(f"BERTScore returned a non-finite score for pair {i} ({triple})")
                out[i] = triple
        return out


def limit_tokenizer_to_positions(tokenizer: object, model: object) -> None:
    """Cap `model_max_length` at the model's position embeddings when the tokenizer has no real limit (absent from
    its config, transformers reports a huge sentinel), so long inputs are truncated instead of failing."""
    positions = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    current = getattr(tokenizer, "model_max_length", None)
    if isinstance(positions, int) and (not isinstance(current, int) or current > positions):
        tokenizer.model_max_length = positions  # type: ignore[attr-defined]


def metric_specs(fp: dict[str, str]) -> tuple[MetricSpec, ...]:
    """The metrics, with `fp` (Scorers.bertscore_fingerprint: the configuration and the model files' digest)."""
    return (
        # raw BERTScore F1 varies ~5x less per sample than ROUGE (SD ~0.04 vs ~0.2): a margin of the same practical
        # size is ~5x smaller (README: margins)
        MetricSpec(
            "bertscore_f1",
            "BERTScore F1 (contextual token similarity)",
            fingerprint=fp,
            margin=0.005,
            bounds=(-1.0, 1.0),
        ),
        MetricSpec("bertscore_precision", "BERTScore precision", gate=False, fingerprint=fp, bounds=(-1.0, 1.0)),
        MetricSpec("bertscore_recall", "BERTScore recall", gate=False, fingerprint=fp, bounds=(-1.0, 1.0)),
    )
