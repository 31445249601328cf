"""ROUGE-1/2/L per sample with Google's `rouge-score` package (the implementation HF `evaluate` wraps).

Per-sample F-measure, reference first as rouge-score expects. Stemming is on by default (Porter stemmer, as the
project decided); note that CLUE's scripts called `evaluate`'s rouge without `use_stemmer`, whose default is
False, so CLUE's published numbers are unstemmed: pass `--clue-rouge-stemmer off` to compare with the paper.
The setting is part of the metric's fingerprint in every result.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from importlib import metadata
from typing import Any

from clue.types import MetricSpec

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


@cache
def _scorer(use_stemmer: bool) -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=use_stemmer)


def rouge(predictions: Sequence[str], references: Sequence[str], *, use_stemmer: bool = True) -> list[dict[str, float]]:
    """One {rouge1, rouge2, rougeL} dict of F-measures per (prediction, reference) pair."""
    if len(predictions) != len(references):
        raise ValueError(f"rouge: {len(predictions)} predictions for {len(references)} references")
    scorer = _scorer(use_stemmer)
    out = []
    for prediction, reference in zip(predictions, references, strict=True):
        scores = scorer.score(reference, prediction)
        out.append({name: float(scores[name].fmeasure) for name in ROUGE_TYPES})
    return out


def metric_specs(use_stemmer: bool) -> tuple[MetricSpec, ...]:
    fp = {"package": f"rouge-score {metadata.version('rouge-score')}", "stemmer": "porter" if use_stemmer else "off"}
    return (
        MetricSpec("rouge1", "ROUGE-1 F-measure (unigram overlap)", fingerprint=fp),
        MetricSpec("rouge2", "ROUGE-2 F-measure (bigram overlap)", fingerprint=fp),
        MetricSpec("rougeL", "ROUGE-L F-measure (longest common subsequence)", fingerprint=fp),
    )
