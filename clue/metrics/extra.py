"""Metrics added to existing tasks from outside clue: by an installed package (entry-point group `clue.metrics`, the
entry pointing at an ExtraMetric) or by a conftest.py (the `pytest_clue_metrics` hook). Scored per sample from the
task's sample and the model's generation, kept per sample, gated by the same paired test when `spec.gate`."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from clue.errors import ClueError
from clue.types import Generation, MetricSpec, Sample, SampleScore
from clue.util.pseudonyms import hash_id
from clue.util.registry import Registry

__all__ = ["METRICS", "ExtraMetric", "apply", "installed", "specs"]


@dataclass(frozen=True)
class ExtraMetric:
    tasks: tuple[str, ...]  # the task names it applies to
    spec: MetricSpec
    score: Callable[[Sample, Generation], float]


# extra metrics for existing tasks that installed packages declare: objects with `tasks` (task names), `spec` (a
# MetricSpec) and `score(sample, generation) -> float`
METRICS: Registry[ExtraMetric] = Registry(
    "clue.metrics", {}, lambda found: isinstance(found, ExtraMetric), "a clue.metrics.extra.ExtraMetric"
)


def apply(
    metrics: Sequence[ExtraMetric],
    task: str,
    samples: Sequence[Sample],
    generations: Sequence[Generation],
    scores: Sequence[SampleScore],
) -> list[SampleScore]:
    """The task's per-sample scores with every applicable extra metric added; a score that is not a finite number
    is an error naming the metric and the sample (never a silent NaN in the gate)."""
    out = list(scores)
    for metric in (m for m in metrics if task in m.tasks):
        for i, (sample, generation) in enumerate(zip(samples, generations, strict=True)):
            value = metric.score(sample, generation)
            if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
                where = hash_id(task, sample.id)  # the id as results show it: a MIMIC id must not reach JUnit
                raise ClueError(f"metric {metric.spec.name} on {task}, sample {where}: {value!r} is not a number")
            out[i] = replace(out[i], scores={**out[i].scores, metric.spec.name: float(value)})
    return out


def specs(metrics: Sequence[ExtraMetric], task: str) -> tuple[MetricSpec, ...]:
    return tuple(m.spec for m in metrics if task in m.tasks)


def installed() -> list[ExtraMetric]:
    """The extra metrics installed packages declare (entry-point group clue.metrics)."""
    return [METRICS.load(name, "metric") for name in METRICS.names()]  # each checked to be an ExtraMetric
