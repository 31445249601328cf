"""The contamination statistic: has the candidate seen the test items themselves, or is it only better at this
kind of text? (README, "Contamination diagnostic"; docs/contamination.md has the validation.)

For each item, log-probabilities (mean per token) of its reference answer and of K perturbed neighbours of it (the
same answer with some words replaced by others of the task's own vocabulary) under the candidate and its base:

    gain_exact = cand(exact) - base(exact)                 (a reference-model ratio, Carlini et al. 2021)
    gain_neighbours = mean_k cand(neighbour_k) - base(neighbour_k)
    d = gain_exact - gain_neighbours                      (neighbourhood comparison, Mattern et al. 2023)

Legitimate domain adaptation raises the likelihood of the exact answer and of its neighbours alike (same words,
same style): d stays near 0. Training on the item raises the exact token sequence above its neighbours: d > 0. The
base cancels what the base model already found likely (its own pre-training, the answer's wording), which a
threshold on the candidate's likelihood alone (Min-K% Prob, Shi et al. 2023) cannot. The case statistic is the mean
d with a bootstrap interval; the case is flagged when the interval's lower end clears `margin`, an item looks
memorised when its own d exceeds `item_threshold`. Pure: numbers in, a frozen finding out.

A model that has learnt the task prefers the right answer to a fluent wrong one, so heavy legitimate adaptation
raises d too (docs/contamination.md: no choice of neighbours or prompt separated it from light contamination).
`against_reference` compares instead: d on the probed items minus d on reference items of the same task that the
candidate cannot have trained on (two independent samples, a two-sample bootstrap interval), flagged when the
interval's lower end is above 0. Adaptation raises d on both; contamination only on the probed items.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from clue.statistics.paired import mean_ci, resampled_means

__all__ = [
    "Finding",
    "ItemLogprobs",
    "ReferenceFinding",
    "against_reference",
    "diagnose",
    "difference_ci",
    "item_statistic",
]


@dataclass(frozen=True)
class ItemLogprobs:
    """One item under one model: mean log-probability per token of the exact reference answer and of each of its
    neighbours (the same neighbours, in the same order, for the candidate and the base)."""

    exact: float
    neighbours: tuple[float, ...]


@dataclass(frozen=True)
class Finding:
    """The diagnostic on one case: the mean of d with its interval, the gains it is the difference of, how many
    items look memorised, and whether the case is flagged."""

    statistic: float
    ci_low: float
    ci_high: float
    exact_gain: float
    neighbour_gain: float
    n: int
    memorised: int
    flagged: bool
    margin: float
    item_threshold: float


def item_statistic(candidate: ItemLogprobs, base: ItemLogprobs) -> float:
    """d for one item: the candidate's gain over the base on the exact answer minus its mean gain on the
    neighbours (nats per token)."""
    if len(candidate.neighbours) != len(base.neighbours) or not candidate.neighbours:
        raise ValueError("the candidate and the base must be scored on the same, non-empty, neighbours")
    gains = [c - b for c, b in zip(candidate.neighbours, base.neighbours, strict=True)]
    return (candidate.exact - base.exact) - sum(gains) / len(gains)


def diagnose(
    candidate: Sequence[ItemLogprobs],
    base: Sequence[ItemLogprobs],
    *,
    margin: float,
    item_threshold: float,
    alpha: float,
    resamples: int,
    seed: int,
) -> Finding:
    """The case's finding from paired items (item i of `candidate` and of `base` are the same item). Flagged when
    the (1 - 2 alpha) interval of the mean d lies above `margin`: the same one-sided level as the gate."""
    if len(candidate) != len(base) or not candidate:
        raise ValueError(f"{len(candidate)} candidate and {len(base)} base items: need the same, non-zero, number")
    values = [float(item_statistic(c, b)) for c, b in zip(candidate, base, strict=True)]
    if not all(math.isfinite(v) for v in values):
        raise ValueError("a log-probability is not a finite number")
    low, high = mean_ci(values, alpha=alpha, resamples=resamples, seed=seed)
    exact = [float(c.exact - b.exact) for c, b in zip(candidate, base, strict=True)]
    statistic = sum(values) / len(values)
    return Finding(
        statistic=statistic,
        ci_low=low,
        ci_high=high,
        exact_gain=sum(exact) / len(exact),
        neighbour_gain=sum(exact) / len(exact) - statistic,
        n=len(values),
        memorised=sum(v > item_threshold for v in values),
        flagged=low > margin,
        margin=margin,
        item_threshold=item_threshold,
    )


@dataclass(frozen=True)
class ReferenceFinding:
    """The probed items' mean d against the reference items' (items the candidate cannot have trained on): the
    difference with its interval, each side's mean d and count, and whether the case is flagged."""

    statistic: float
    ci_low: float
    ci_high: float
    probed: float
    reference: float
    n_probed: int
    n_reference: int
    flagged: bool


def difference_ci(
    a: Sequence[float], b: Sequence[float], *, alpha: float, resamples: int, seed: int
) -> tuple[float, float]:
    """Percentile bootstrap (1 - 2 alpha) interval of mean(a) - mean(b) for two independent samples: each is
    resampled on its own (their items are different items, not pairs)."""
    if not a or not b:
        raise ValueError(f"{len(a)} and {len(b)} values: need both non-empty")
    samples = [np.asarray(a, dtype=float), np.asarray(b, dtype=float)]
    means_a, means_b = resampled_means(samples, resamples, np.random.default_rng(seed))
    low, high = np.quantile(means_a - means_b, [alpha, 1 - alpha])
    return float(low), float(high)


def against_reference(
    probed: tuple[Sequence[ItemLogprobs], Sequence[ItemLogprobs]],
    reference: tuple[Sequence[ItemLogprobs], Sequence[ItemLogprobs]],
    *,
    alpha: float,
    resamples: int,
    seed: int,
) -> ReferenceFinding:
    """The finding from (candidate, base) scores of the probed items and of the reference items (each pair paired
    item by item, as in `diagnose`). Flagged when the (1 - 2 alpha) interval of the difference lies above 0: the
    probed items gained more over their neighbours than items the candidate has not seen."""
    d = []
    for name, (candidate, base) in (("probed", probed), ("reference", reference)):
        if len(candidate) != len(base) or not candidate:
            raise ValueError(f"{name}: {len(candidate)} candidate and {len(base)} base items: need the same, non-zero")
        d.append([float(item_statistic(c, b)) for c, b in zip(candidate, base, strict=True)])
        if not all(math.isfinite(v) for v in d[-1]):
            raise ValueError(f"{name}: a log-probability is not a finite number")
    low, high = difference_ci(d[0], d[1], alpha=alpha, resamples=resamples, seed=seed)
    probed_d, reference_d = sum(d[0]) / len(d[0]), sum(d[1]) / len(d[1])
    return ReferenceFinding(
        statistic=probed_d - reference_d,
        ci_low=low,
        ci_high=high,
        probed=probed_d,
        reference=reference_d,
        n_probed=len(d[0]),
        n_reference=len(d[1]),
        flagged=low > 0,
    )
