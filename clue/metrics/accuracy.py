"""Accuracy per sample: 1.0 when the parsed answer equals the gold label, else 0.0 (an unparseable answer is wrong)."""

from __future__ import annotations

from clue.types import MetricSpec

ACCURACY = MetricSpec(
    name="accuracy",
    description="share of samples whose parsed answer equals the gold label; unparseable answers count as wrong",
    higher_is_better=True,
    kind="binary",
    fingerprint={"definition": "parsed answer == gold label; parser defined by the task module"},
)


def accuracy(parsed: str | None, gold: str) -> float:
    return 1.0 if parsed is not None and parsed == gold else 0.0
