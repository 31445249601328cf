"""The group-sequential gate: look at the comparison after every chunk of samples and stop generating once the
verdict is settled, at the error rates of the fixed-sample gate.

Each side of the gate (the regression claim, the non-inferiority claim) spends its one-sided alpha over the looks
with the Lan–DeMets O'Brien–Fleming function α(t) = 2 − 2Φ(z_{1−α/2} / √t), t = units seen / units in the task.
The look-k boundary is the nominal level whose crossing probability, given no crossing before, is the alpha spent
between looks k−1 and k (recursive numerical integration, Armitage–McPherson–Rowe); the other side's stop is
ignored when computing it (non-binding), which keeps each side at or below its alpha. At each look the fixed-sample
decision (`clue.statistics.decision.decide`: Tango or BCa, Holm across the case's gated metrics) runs at the look's
nominal level: a regression on any gated metric stops and fails, every gated metric non-inferior stops and passes,
anything else continues; at the last look the verdict stands as it is.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt

from clue.statistics.decision import GateConfig, MetricScores, TaskDecision, decide

_NORMAL = NormalDist()
DEFAULT_LOOK_EVERY = 100  # units (pairs, or clusters) between looks


MIN_LEVEL = 1e-15  # a look whose boundary lies beyond ~8 SE cannot be crossed: tested at this level instead


def _sf(x: float) -> float:
    """The standard normal upper tail, accurate far out (1 - cdf(x) rounds to 0 beyond x ~ 8)."""
    return 0.5 * math.erfc(x / math.sqrt(2))


def _sf_array(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The standard normal upper tail of an array, with a relative error below 1.2e-7 everywhere, far tails
    included (Numerical Recipes' Chebyshev fit of erfc): a Python-level erfc per grid point made the boundaries of a
    task with 100 looks take seconds."""
    z = np.abs(x) / math.sqrt(2)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = (
        -z * z
        - 1.26551223
        + t
        * (
            1.00002368
            + t
            * (
                0.37409196
                + t
                * (
                    0.09678418
                    + t
                    * (
                        -0.18628806
                        + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))
                    )
                )
            )
        )
    )
    erfc = t * np.exp(poly)
    return np.where(x >= 0, 0.5 * erfc, 1.0 - 0.5 * erfc)


def obrien_fleming_spent(t: float, alpha: float) -> float:
    """Lan–DeMets O'Brien–Fleming-type spending: the one-sided alpha spent by information fraction t."""
    if t <= 0:
        return 0.0
    if t >= 1:
        return alpha
    return 2.0 * _sf(_NORMAL.inv_cdf(1 - alpha / 2) / math.sqrt(t))


@lru_cache(maxsize=256)
def boundaries(fractions: tuple[float, ...], alpha: float, grid: int = 2001) -> tuple[float, ...]:
    """Nominal one-sided levels of the looks at information fractions `fractions` (increasing, the last 1).

    Under H0 the score process S_k = Z_k √t_k has independent normal increments. The sub-density of S on the
    continuation region (no crossing yet) is carried from look to look on a grid; each look's crossing probability
    is integrated exactly over the increment (normal tail), and its critical value is solved so that the
    probability of first crossing there equals the alpha spent since the previous look."""
    s = np.linspace(-10.0, 10.0, grid)
    step = float(s[1] - s[0])
    first = fractions[0]
    spent = obrien_fleming_spent(first, alpha)
    c = -_NORMAL.inv_cdf(spent) if spent > 0 else 40.0
    levels = [max(spent, MIN_LEVEL)]
    density = np.exp(-0.5 * s**2 / first) / math.sqrt(2 * math.pi * first)
    weights = density * step * _below(s, step, c * math.sqrt(first))
    previous = first
    kernels: dict[float, npt.NDArray[np.float64]] = {}
    for t in fractions[1:]:
        sd = math.sqrt(t - previous)
        target = obrien_fleming_spent(t, alpha) - spent

        def crossing(z: float, weights: npt.NDArray[np.float64] = weights, sd: float = sd, t: float = t) -> float:
            return float(np.sum(weights * _sf_array((z * math.sqrt(t) - s) / sd)))

        low, high = -8.0, 40.0
        for _ in range(60):
            mid = (low + high) / 2
            low, high = (mid, high) if crossing(mid) > target else (low, mid)
        c = (low + high) / 2
        spent += crossing(c)
        levels.append(max(_sf(c), MIN_LEVEL))
        key = round(sd, 12)  # equally spaced looks share one increment: one kernel
        if key not in kernels:
            kernels[key] = np.exp(-0.5 * ((s[:, None] - s[None, :]) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))
        weights = (kernels[key] @ weights) * step * _below(s, step, c * math.sqrt(t))
        previous = t
    return tuple(levels)


def _below(s: npt.NDArray[np.float64], step: float, cut: float) -> npt.NDArray[np.float64]:
    """The share of each grid cell below `cut` (the continuation region), so the cut need not fall on the grid."""
    return np.asarray(np.clip((cut - (s - step / 2)) / step, 0.0, 1.0))


@dataclass(frozen=True)
class Plan:
    """Where the looks fall, in units (pairs, or clusters), and each look's nominal one-sided level."""

    units: int
    looks: tuple[int, ...]
    levels: tuple[float, ...]

    @classmethod
    def make(cls, units: int, look_every: int, alpha: float) -> Plan:
        if units <= 0:
            return cls(0, (0,), (alpha,))
        looks = (*range(look_every, units, look_every), units)
        fractions = tuple(round(n / units, 9) for n in looks)
        return cls(units, looks, boundaries(fractions, alpha))


@dataclass(frozen=True)
class Look:
    """One look's decision: `stop` with the boundary crossed ("regressed" or "non-inferior"), or continue."""

    index: int  # 1-based
    units: int
    level: float
    decision: TaskDecision | None  # None: the comparison could not be made (its case reports why)
    stop: bool
    boundary: str | None  # "regressed" | "non-inferior" | None (continued, or the data ran out)


def look(
    plan: Plan,
    index: int,
    metrics: Sequence[MetricScores],
    config: GateConfig,
    clusters: Sequence[str] | None = None,
) -> Look:
    """The decision at look `index` (0-based) on the units seen so far (`metrics` hold their scores)."""
    level = plan.levels[index]
    decision = decide(metrics, GateConfig(level, config.resamples, config.seed, config.min_samples), clusters)
    gated = [c for c in decision.comparisons if c.metric in decision.gated]
    last = index == len(plan.looks) - 1
    boundary = None
    if any(c.verdict == "regressed" for c in gated):
        boundary = "regressed"
    elif gated and all(c.verdict in ("non-inferior", "improved") for c in gated):
        boundary = "non-inferior"
    return Look(index + 1, plan.looks[index], level, decision, stop=boundary is not None or last, boundary=boundary)


def order(ids: Sequence[str], clusters: Sequence[str | None], seed: str) -> list[int]:
    """A seeded random order of samples (indices), clusters kept together in their file order: fixed by `seed`
    (the task and its data hash), so a model, its base and every later run see the same order."""
    labels = [c if c is not None else f"\0{i}" for i, c in zip(ids, clusters, strict=True)]
    units = list(dict.fromkeys(labels))
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big"))
    position = {units[int(j)]: r for r, j in enumerate(rng.permutation(len(units)))}
    return sorted(range(len(ids)), key=lambda i: (position[labels[i]], i))


def unit_prefix(clusters: Sequence[str] | None, n_samples: int, units: int) -> int:
    """How many samples (in order) make up the first `units` units: clusters are contiguous in sequential order."""
    if clusters is None:
        return min(units, n_samples)
    seen: set[str] = set()
    for i, label in enumerate(clusters):
        if label not in seen:
            if len(seen) == units:
                return i
            seen.add(label)
    return n_samples


@dataclass(frozen=True)
class Stop:
    """Where a case's sequential gate stopped: the look, the units (pairs, or clusters) and samples it used of those
    available, the nominal level of that look and the boundary crossed (None: the data ran out first)."""

    look: int
    looks: int
    units: int
    units_available: int
    samples: int
    samples_available: int
    level: float
    boundary: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "look": self.look,
            "looks_planned": self.looks,
            "units_used": self.units,
            "units_available": self.units_available,
            "samples_used": self.samples,
            "samples_available": self.samples_available,
            "nominal_alpha": self.level,
            "boundary": self.boundary,
            "saved": 1 - self.samples / self.samples_available if self.samples_available else 0.0,
        }


def drive(
    plan: Plan,
    clusters: Sequence[str] | None,
    n_samples: int,
    cases: Sequence[str],
    advance: Callable[[int], None],
    judge: Callable[[str, int, int], Look],
) -> dict[str, Stop]:
    """The sequential loop of one task: before each look `advance(upto)` makes the first `upto` samples' scores
    known (generating and scoring the new ones), then `judge(case, look index, units seen)` decides each open case.
    A case is decided once, at the look where it stops; the loop ends when every case has stopped. Returns each
    case's stop, the one record of its decision."""
    stops: dict[str, Stop] = {}
    for index, seen in enumerate(plan.looks):
        upto = unit_prefix(clusters, n_samples, seen)
        advance(upto)
        for case in [c for c in cases if c not in stops]:
            decided = judge(case, index, seen)
            if decided.stop:
                stops[case] = Stop(
                    decided.index, len(plan.looks), seen, plan.units, upto, n_samples, decided.level, decided.boundary
                )
        if len(stops) == len(cases):
            break
    return stops


def run(
    metrics: Sequence[MetricScores],
    config: GateConfig,
    look_every: int = DEFAULT_LOOK_EVERY,
    clusters: Sequence[str] | None = None,
) -> Look:
    """The whole sequential gate on fully known scores (simulation and tests): the look at which it stops."""
    n = len(metrics[0].model)
    units = n if clusters is None else len(dict.fromkeys(clusters))
    plan = Plan.make(units, look_every, config.alpha)
    for index, seen in enumerate(plan.looks):
        upto = unit_prefix(clusters, n, seen)
        prefix = [MetricScores(m.spec, m.model[:upto], m.base[:upto], m.margin) for m in metrics]
        result = look(plan, index, prefix, config, None if clusters is None else clusters[:upto])
        if result.stop:
            return result
    raise AssertionError("the last look always stops")
