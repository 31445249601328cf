"""ROUGE-1/2/L per sample with Google's `rouge-score` package (the implementation HF `evaluate` wraps).

Per-sample F-measure, reference first as rouge-score expects. Stemming is off by default, as in CLUE: its scripts
called `evaluate`'s rouge without `use_stemmer` (default False), so the paper's numbers are unstemmed.
`--clue-rouge-stemmer on` adds the Porter stemmer; the setting is part of the metric's fingerprint in every result.

When `rouge-score-rs` is installed (`pip install -e ".[fast]"`) it is used instead: an independent Rust
reimplementation that `studies/rouge_compare.py` measured bit-identical to rouge-score on all 18,000
F-measures of the real MeQSum data (stemming on and off) and 36-51x faster; the test suite re-checks the equality.
Which implementation ran is part of the fingerprint.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from importlib import metadata
from typing import Any

from clue.types import MetricSpec

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


def implementation() -> str:
    """'rouge-score-rs X' when the Rust package is importable, else 'rouge-score X'."""
    for package, module in (("rouge-score-rs", "rouge_score_rs"), ("rouge-score", "rouge_score")):
        try:
            __import__(module)
        except ImportError:
            continue
        return f"{package} {metadata.version(package)}"
    raise ImportError("neither rouge-score nor rouge-score-rs is installed")


@cache
def _scorer(use_stemmer: bool, rust: bool) -> Any:
    if rust:
        from rouge_score_rs import rouge_scorer
    else:
        from rouge_score import rouge_scorer
    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=use_stemmer)


def rouge(
    predictions: Sequence[str], references: Sequence[str], *, use_stemmer: bool = False, rust: bool | None = None
) -> list[dict[str, float]]:
    """One {rouge1, rouge2, rougeL} dict of F-measures per (prediction, reference) pair.

    `rust=None` uses rouge-score-rs when installed; True/False force one implementation (tests compare them).
    """
    if len(predictions) != len(references):
        raise ValueError(f"rouge: {len(predictions)} predictions for {len(references)} references")
    if rust is None:
        rust = implementation().startswith("rouge-score-rs")
    scorer = _scorer(use_stemmer, rust)
    out = []
    for prediction, reference in zip(predictions, references, strict=True):
        scores = scorer.score(reference, prediction)
        out.append({name: float(scores[name].fmeasure) for name in ROUGE_TYPES})
    return out


def metric_specs(use_stemmer: bool) -> tuple[MetricSpec, ...]:
    fp = {"package": implementation(), "stemmer": "porter" if use_stemmer else "off"}
    return (
        MetricSpec("rouge1", "ROUGE-1 F-measure (unigram overlap)", fingerprint=fp, bounds=(0.0, 1.0)),
        MetricSpec("rouge2", "ROUGE-2 F-measure (bigram overlap)", fingerprint=fp, bounds=(0.0, 1.0)),
        MetricSpec("rougeL", "ROUGE-L F-measure (longest common subsequence)", fingerprint=fp, bounds=(0.0, 1.0)),
    )
