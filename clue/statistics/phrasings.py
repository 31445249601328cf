"""Does a gain survive another wording? The gate across instruction wordings (issue 44), arrays in, numbers out.

A case run under N wordings of its task's instruction (the reference wording, CLUE's, and N-1 alternatives) makes
one claim, tested as one family with Holm's step-down procedure at `alpha`:

- the reference wording's gated metrics, as the ordinary gate compares them (`clue.statistics.decision`);
- the primary metric under each alternative wording, paired by sample;
- the primary metric **combined**: each sample's score averaged over the N wordings, for the model and for the base,
  compared as a continuous paired score (BCa bootstrap). Resampling samples (or clusters) keeps each sample's N
  scores together, so the wordings' correlation is honoured without being modelled.

The verdict: REGRESSED when any comparison in the family regressed (a wording a clinician might type, or the mean
over wordings, is worse by more than the margin); otherwise the ordinary order (inconclusive > non-inferior >
improved) over the reference wording's other gated metrics and the combined comparison, so IMPROVED needs the
combined comparison improved and no wording regressed. One family means one error rate: the chance of a false
REGRESSED at the margin stays at or below `alpha` however correlated the wordings are (`studies/phrasings_size.py`).

Sensitivity is a finding, not a verdict: each model's spread (highest minus lowest mean of the primary metric over
the wordings) and the candidate's spread minus its base's, with a percentile bootstrap interval from the same
resampling of samples. "more sensitive" when the interval lies above 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from clue.statistics import paired as stats
from clue.statistics.decision import GateConfig, MetricScores, prepare_all, task_verdict

COMBINED = "combined"  # the id of the comparison of per-sample means over the wordings
Finding = Literal["more sensitive", "less sensitive", "no difference shown"]


@dataclass(frozen=True)
class WordingScores:
    """The primary metric's paired scores under one alternative wording (the samples in the reference's order)."""

    wording: str
    model: stats.Scores
    base: stats.Scores


@dataclass(frozen=True)
class Sensitivity:
    """Each model's spread of the primary metric's mean over the wordings, and the candidate's minus its base's with
    its 1 - 2 alpha percentile bootstrap interval."""

    model_spread: float
    base_spread: float
    ci_low: float
    ci_high: float

    @property
    def delta(self) -> float:
        return self.model_spread - self.base_spread

    @property
    def finding(self) -> Finding:
        if self.ci_low > 0:
            return "more sensitive"
        if self.ci_high < 0:
            return "less sensitive"
        return "no difference shown"


@dataclass(frozen=True)
class PhrasingDecision:
    """The family's outcome: the reference wording's comparisons (every metric, gated ones at their Holm level in
    this family), the primary metric's comparison under each alternative wording and combined, the verdict, and
    the sensitivity finding."""

    verdict: stats.Verdict
    reference: tuple[stats.Comparison, ...]
    wordings: tuple[tuple[str, stats.Comparison], ...]  # (wording id, comparison), alternatives in order
    combined: stats.Comparison
    sensitivity: Sensitivity
    gated: frozenset[str]

    @property
    def regressed(self) -> list[str]:
        """What regressed: reference metrics by name, alternative wordings by id, and `combined`."""
        found = [f"reference {c.metric}" for c in self.reference if c.metric in self.gated and c.verdict == "regressed"]
        found += [w for w, c in self.wordings if c.verdict == "regressed"]
        return found + ([COMBINED] if self.combined.verdict == "regressed" else [])


def decide_phrasings(
    reference: Sequence[MetricScores],
    primary: str,
    alternatives: Sequence[WordingScores],
    config: GateConfig,
    clusters: Sequence[str] | None = None,
) -> PhrasingDecision:
    """One Holm family over the reference wording's gated metrics, the primary metric under each alternative and
    the primary metric combined over all wordings; the verdict and the sensitivity finding (module docstring)."""
    if not alternatives:
        raise ValueError("phrasings: at least one alternative wording is needed (N >= 2)")
    spec = next((m for m in reference if m.spec.name == primary), None)
    if spec is None:
        raise ValueError(f"phrasings: the primary metric {primary!r} is not among the reference's metrics")
    options = {
        "metric": primary,
        "higher_is_better": spec.spec.higher_is_better,
        "margin": spec.margin,
        "alpha": config.alpha,
        "resamples": config.resamples,
        "seed": config.seed,
        "min_samples": config.min_samples,
        "clusters": clusters,
    }
    prepared = prepare_all(reference, config, clusters)
    worded = [stats.prepare(spec.spec.kind, w.model, w.base, **options) for w in alternatives]
    model = np.vstack([np.asarray(spec.model, dtype=float), *(np.asarray(w.model, dtype=float) for w in alternatives)])
    base = np.vstack([np.asarray(spec.base, dtype=float), *(np.asarray(w.base, dtype=float) for w in alternatives)])
    combined = stats.prepare("continuous", model.mean(axis=0), base.mean(axis=0), **options)
    gated = [m.spec.name for m in reference if m.spec.gate]
    family = [prepared[name] for name in gated] + worded + [combined]
    levels = stats.holm_levels([p.p_regression for p in family], config.alpha)
    at = {name: prepared[name].at(level) for name, level in zip(gated, levels[: len(gated)], strict=True)}
    compared = tuple(at.get(m.spec.name) or prepared[m.spec.name].at() for m in reference)
    alt = tuple(
        (w.wording, p.at(level)) for w, p, level in zip(alternatives, worded, levels[len(gated) : -1], strict=True)
    )
    whole = combined.at(levels[-1])
    names = frozenset(gated)
    sensitivity = spread_difference(model, base, config, clusters)
    tested = [*(c for c in compared if c.metric in names), *(c for _, c in alt), whole]
    if any(c.verdict == "regressed" for c in tested):
        verdict: stats.Verdict = "regressed"
    else:
        others = [c for c in compared if c.metric != primary]
        verdict = task_verdict([*others, whole], names | {primary})
    return PhrasingDecision(verdict, compared, alt, whole, sensitivity, names)


def spread_difference(
    model: npt.NDArray[np.float64],
    base: npt.NDArray[np.float64],
    config: GateConfig,
    clusters: Sequence[str] | None = None,
) -> Sensitivity:
    """Spread (max - min over wordings of the mean score) of each model, from wording x sample score matrices, and a
    percentile bootstrap interval of the difference, resampling samples (or whole clusters) for every wording at
    once. Chunked like the gate's bootstrap, so memory stays flat."""
    if model.shape != base.shape or model.ndim != 2 or model.shape[1] == 0:
        raise ValueError(f"phrasings: score matrices must be wordings x samples alike ({model.shape} vs {base.shape})")
    if clusters is None:
        labels = np.arange(model.shape[1])
    else:
        labels = np.unique(np.asarray(clusters, dtype=str), return_inverse=True)[1]
    units = int(labels.max()) + 1
    sums_m = np.stack([np.bincount(labels, weights=row, minlength=units) for row in model])
    sums_b = np.stack([np.bincount(labels, weights=row, minlength=units) for row in base])
    counts = np.bincount(labels, minlength=units).astype(float)
    rng = np.random.default_rng(config.seed)
    deltas = np.empty(config.resamples)
    chunk = max(1, 2_000_000 // max(units * model.shape[0], 1))
    for start in range(0, config.resamples, chunk):
        stop = min(config.resamples, start + chunk)
        idx = rng.integers(0, units, size=(stop - start, units))
        rows = (np.arange(stop - start)[:, None] * units + idx).ravel()
        weights = np.bincount(rows, minlength=(stop - start) * units).reshape(stop - start, units).astype(float)
        total = weights @ counts
        means_m = (weights @ sums_m.T) / total[:, None]
        means_b = (weights @ sums_b.T) / total[:, None]
        deltas[start:stop] = np.ptp(means_m, axis=1) - np.ptp(means_b, axis=1)
    low, high = np.quantile(deltas, [config.alpha, 1 - config.alpha])
    return Sensitivity(_spread(model.mean(axis=1)), _spread(base.mean(axis=1)), float(low), float(high))


def _spread(means: npt.NDArray[np.float64]) -> float:
    return float(means.max() - means.min())
