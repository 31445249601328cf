"""The task-level gate decision: per-metric paired scores in, the test case's verdict and per-metric results out.

One pure function, importable without pytest, that the plugin, the report and any other runner call. A test case
(one task, one model against its base) claims "no gated metric regressed". Its error rates are controlled as one
claim:

- **failing** (some gated metric regressed) controls the family-wise error at `alpha` with Holm's step-down
  procedure over the gated metrics' regression tests; each metric's upper bound is shown at the level Holm tested
  it at, so interval and verdict agree;
- **passing as non-inferior** needs every gated metric non-inferior at `alpha` (an intersection-union test: no
  adjustment is needed for an "all of them" claim).

Across test cases there is no correction: each case is its own release claim. Non-gated metrics are compared at
`alpha` for information only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from clue.statistics import paired as stats
from clue.types import MetricSpec


@dataclass(frozen=True)
class MetricScores:
    """One metric's paired per-sample scores (same sample order for model and base) and its margin."""

    spec: MetricSpec
    model: stats.Scores
    base: stats.Scores
    margin: float


@dataclass(frozen=True)
class GateConfig:
    alpha: float = stats.DEFAULT_ALPHA
    resamples: int = stats.DEFAULT_RESAMPLES
    seed: int = 1  # the bootstrap's seed: changes intervals only, never the generations
    min_samples: int = stats.DEFAULT_MIN_SAMPLES  # independent units: pairs, or clusters


@dataclass(frozen=True)
class TaskDecision:
    verdict: stats.Verdict
    comparisons: tuple[stats.Comparison, ...]
    gated: frozenset[str]


def task_verdict(comparisons: Sequence[stats.Comparison], gated: frozenset[str]) -> stats.Verdict:
    """The case's verdict from its gated metrics: any regressed > any inconclusive > any non-inferior > improved."""
    verdicts = {c.verdict for c in comparisons if c.metric in gated}
    order: tuple[stats.Verdict, ...] = ("regressed", "inconclusive", "non-inferior")
    for verdict in order:
        if verdict in verdicts:
            return verdict
    return "improved" if verdicts else "inconclusive"


def prepare_all(
    metrics: Sequence[MetricScores], config: GateConfig, clusters: Sequence[str] | None = None
) -> dict[str, stats.Prepared]:
    """Every metric's paired test, computed once (its regression claim's level is set by the family it is in)."""
    return {
        m.spec.name: stats.prepare(
            m.spec.kind,
            m.model,
            m.base,
            metric=m.spec.name,
            higher_is_better=m.spec.higher_is_better,
            margin=m.margin,
            alpha=config.alpha,
            resamples=config.resamples,
            seed=config.seed,
            min_samples=config.min_samples,
            clusters=clusters,
        )
        for m in metrics
    }


def decide(metrics: Sequence[MetricScores], config: GateConfig, clusters: Sequence[str] | None = None) -> TaskDecision:
    """Compare every metric, adjust the gated metrics' regression claims with Holm, and give the case's verdict."""
    prepared = prepare_all(metrics, config, clusters)
    gated = [m for m in metrics if m.spec.gate]
    levels = dict.fromkeys(prepared, config.alpha)
    holm = stats.holm_levels([prepared[m.spec.name].p_regression for m in gated], config.alpha)
    levels.update(zip((m.spec.name for m in gated), holm, strict=True))
    ordered = tuple(prepared[m.spec.name].at(levels[m.spec.name]) for m in metrics)
    names = frozenset(m.spec.name for m in gated)
    return TaskDecision(task_verdict(ordered, names), ordered, names)
