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
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from clue.statistics.paired import mean_ci

__all__ = ["Finding", "ItemLogprobs", "diagnose", "item_statistic"]


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
    values = [item_statistic(c, b) for c, b in zip(candidate, base, strict=True)]
    if not all(math.isfinite(v) for v in values):
        raise ValueError("a log-probability is not a finite number")
    low, high = mean_ci(values, alpha=alpha, resamples=resamples, seed=seed)
    exact = [c.exact - b.exact for c, b in zip(candidate, base, strict=True)]
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
