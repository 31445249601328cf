"""Paired comparisons of a model against its base model, sample by sample.

Both tests work on the *gain* per sample: model minus base, sign-flipped for metrics where lower is better, so
that a positive gain always means "the model is better". Each comparison has a lower confidence bound at the
one-sided level `alpha` and an upper bound at the level its regression claim is tested at (`alpha`, or the
Holm-adjusted level when a test case gates several metrics: `clue.statistics.decision`). The bounds decide the verdict:

- regressed:     the upper bound lies below -margin   (the model is worse by more than the margin)
- improved:      the lower bound lies above 0
- non-inferior:  the lower bound lies above -margin
- inconclusive:  anything else, or fewer independent units (pairs, or clusters) than `min_samples`

Binary metrics (accuracy) use Tango's asymptotic score interval for the difference of paired proportions, with a
continuity correction (unconditional: the discordance is estimated under each hypothesis, not plugged in as if
known); continuous
metrics use a seeded paired bootstrap with BCa intervals (bias correction from the resamples, acceleration from
the jackknife), optionally resampling whole clusters (questions, patients) so that repeated measurements of one
unit do not inflate n. The p-values are those of the same intervals, so interval and verdict always agree.

Every comparison also reports its minimum detectable effect, (z_{1-alpha} + z_{0.8}) x SE: an unchanged model is
shown non-inferior with 80 % power only when the margin exceeds it, and a regression is found with 80 % power
when the model is worse than -(margin + MDE). MDE > margin means the comparison is too small for its margin.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

Verdict = Literal["regressed", "inconclusive", "non-inferior", "improved"]
Scores = Sequence[float] | npt.NDArray[np.float64]  # per-sample scores, one per paired sample

DEFAULT_ALPHA = 0.025
DEFAULT_MARGIN = 0.02
DEFAULT_RESAMPLES = 10_000
DEFAULT_MIN_SAMPLES = 10
POWER = 0.8

_NORMAL = NormalDist()


@dataclass(frozen=True)
class Comparison:
    """The outcome of one paired comparison. `delta`, `ci_low` and `ci_high` are model minus base in the metric's
    own units (so negative is worse for a higher-is-better metric); p-values are one-sided. `ci_low` is at level
    `alpha`, `ci_high` at `regression_alpha` (equal unless a multi-metric case adjusted it)."""

    metric: str
    method: str
    n: int
    base_mean: float
    model_mean: float
    delta: float
    ci_low: float
    ci_high: float
    confidence: float
    margin: float
    alpha: float
    higher_is_better: bool
    p_regression: float
    p_noninferior: float
    p_superior: float
    verdict: Verdict
    se: float = 0.0  # standard error of the mean gain
    mde: float = 0.0  # minimum detectable effect at 80 % power
    units: int = 0  # independent units: pairs, or clusters
    unit: str = "pairs"  # what a unit is: "pairs", or "clusters" (repetitions of one question move together)
    min_samples: int = DEFAULT_MIN_SAMPLES
    regression_alpha: float = DEFAULT_ALPHA  # one-sided level of the regression claim (Holm-adjusted in a family)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """One line for failure messages: metric, base, model, delta, CI, p, n, MDE, verdict and why."""
        return (
            f"{self.metric}: base={self.base_mean:.4f} model={self.model_mean:.4f} "
            f"delta={self.delta:+.4f} {self.confidence:.0%} CI [{self.ci_low:+.4f}, {self.ci_high:+.4f}] "
            f"margin={self.margin:g} p(regression)={self.p_regression:.4g}{self._level()} n={self.n} "
            f"({self.method}) MDE={self.mde:.4f} -> {self.verdict}{self.reason()}"
        )

    def _level(self) -> str:
        if math.isclose(self.regression_alpha, self.alpha):
            return ""
        return f" (Holm-adjusted level {self.regression_alpha:.4g})"

    def reason(self) -> str:
        """Why an inconclusive comparison is inconclusive: the interval alone can read as a verdict."""
        if self.verdict != "inconclusive":
            return ""
        if self.units < self.min_samples:
            return f" (n = {self.units} {self.unit} < min-samples {self.min_samples})"
        if self.mde > self.margin:
            return f" (MDE {self.mde:.4f} > margin {self.margin:g}: too few {self.unit} for this margin)"
        return " (the CI straddles -margin)"


def _verdict(gain_low: float, gain_high: float, margin: float, units: int, min_samples: int) -> Verdict:
    if units < min_samples:
        return "inconclusive"
    if gain_high < -margin:
        return "regressed"
    if gain_low > 0:
        return "improved"
    if gain_low > -margin:
        return "non-inferior"
    return "inconclusive"


def _validate_pairs(
    model: Scores, base: Scores, metric: str
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    m = np.asarray(model, dtype=float)
    b = np.asarray(base, dtype=float)
    if m.shape != b.shape or m.ndim != 1:
        raise ValueError(f"{metric}: model and base need the same number of paired samples ({m.shape} vs {b.shape})")
    if len(m) == 0:
        raise ValueError(f"{metric}: no paired samples to compare")
    bad = ~np.isfinite(m) | ~np.isfinite(b)
    if bad.any():
        raise ValueError(f"{metric}: non-finite score at paired sample index {int(np.argmax(bad))}")
    return m, b


@dataclass(frozen=True)
class Prepared:
    """A paired test computed once: everything on the gain scale except the upper bound, which depends on the
    level the regression claim is tested at (Holm may lower it); `at(level)` gives the Comparison."""

    metric: str
    method: str
    model: npt.NDArray[np.float64]
    base: npt.NDArray[np.float64]
    higher_is_better: bool
    margin: float
    alpha: float
    min_samples: int
    low: float
    upper: Callable[[float], float]  # one-sided level -> upper bound of the gain
    p_regression: float
    p_noninferior: float
    p_superior: float
    se: float
    units: int
    unit: str = "pairs"

    def at(self, regression_alpha: float | None = None) -> Comparison:
        level = self.alpha if regression_alpha is None else regression_alpha
        _check_levels(level, self.margin)
        low, high = self.low, self.upper(level)
        # back to the metric's own units: for lower-is-better, delta = -gain and the interval flips
        ci_low, ci_high = (low, high) if self.higher_is_better else (-high, -low)
        m, b = self.model, self.base
        return Comparison(
            metric=self.metric,
            method=self.method,
            n=len(m),
            base_mean=float(b.mean()),
            model_mean=float(m.mean()),
            delta=float(m.mean() - b.mean()),
            ci_low=float(ci_low),
            ci_high=float(ci_high),
            confidence=1 - 2 * self.alpha,
            margin=self.margin,
            alpha=self.alpha,
            higher_is_better=self.higher_is_better,
            p_regression=float(self.p_regression),
            p_noninferior=float(self.p_noninferior),
            p_superior=float(self.p_superior),
            verdict=_verdict(low, high, self.margin, self.units, self.min_samples),
            se=float(self.se),
            mde=minimum_detectable_effect(self.se, self.alpha),
            units=self.units,
            unit=self.unit,
            min_samples=self.min_samples,
            regression_alpha=level,
        )


def minimum_detectable_effect(se: float, alpha: float, power: float = POWER) -> float:
    """(z_{1-alpha} + z_power) x SE: the effect a one-sided level-alpha test finds with the given power."""
    return float((_NORMAL.inv_cdf(1 - alpha) + _NORMAL.inv_cdf(power)) * se)


# -- continuous: BCa paired bootstrap ---------------------------------------------------------------------------
def _units(gains: npt.NDArray[np.float64], clusters: Sequence[str] | None, metric: str) -> tuple[Any, Any]:
    """Per-unit gain sums and sample counts: samples, or clusters whose repetitions move together."""
    if clusters is None:
        return gains, np.ones_like(gains)
    if len(clusters) != len(gains):
        raise ValueError(f"{metric}: {len(clusters)} cluster labels for {len(gains)} samples")
    labels, inverse = np.unique(np.asarray(clusters, dtype=str), return_inverse=True)
    sums = np.bincount(inverse, weights=gains, minlength=len(labels)).astype(float)
    counts = np.bincount(inverse, minlength=len(labels)).astype(float)
    return sums, counts


def bootstrap_replicates(
    sums: npt.NDArray[np.float64], counts: npt.NDArray[np.float64], resamples: int, seed: int
) -> npt.NDArray[np.float64]:
    """Pooled mean gain of `resamples` resamples of the units (seeded; chunked to bound memory)."""
    rng = np.random.default_rng(seed)
    n_units = len(sums)
    replicates = np.empty(resamples)
    chunk = max(1, 2_000_000 // max(n_units, 1))
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        idx = rng.integers(0, n_units, size=(stop - start, n_units))
        replicates[start:stop] = sums[idx].sum(axis=1) / counts[idx].sum(axis=1)
    return replicates


TAIL_REPLICATES = 10  # fewer replicates than this beyond a bound: the bootstrap cannot place it (normal tail instead)


@dataclass(frozen=True)
class BCa:
    """A BCa bootstrap distribution: sorted replicates, bias correction z0 and acceleration a.

    A bound further out than the replicates reach (level x resamples < TAIL_REPLICATES, e.g. a sequential gate's
    early look at a nominal level of 1e-7) would be read off the most extreme replicates, which lie well inside the
    true quantile: such bounds, and the p-values beyond them, use the normal approximation estimate + z x SE."""

    replicates: npt.NDArray[np.float64]  # sorted
    z0: float
    a: float
    estimate: float = 0.0
    se: float = 0.0

    @classmethod
    def fit(cls, replicates: npt.NDArray[np.float64], sums: Any, counts: Any) -> BCa:
        """z0 from the share of replicates below the estimate (ties count half); a from the jackknife of the
        pooled mean over units (for single samples that is the closed form for a mean)."""
        estimate = sums.sum() / counts.sum()
        se = float(np.std(replicates, ddof=1)) if len(replicates) > 1 else 0.0
        r = np.sort(replicates)
        below = (np.count_nonzero(r < estimate) + 0.5 * np.count_nonzero(r == estimate)) / len(r)
        below = min(max(below, 0.5 / len(r)), 1 - 0.5 / len(r))
        z0 = _NORMAL.inv_cdf(below)
        a = 0.0
        if len(sums) > 1:
            jack = (sums.sum() - sums) / (counts.sum() - counts)
            d = jack.mean() - jack
            denominator = 6.0 * float(np.sum(d**2)) ** 1.5
            a = float(np.sum(d**3)) / denominator if denominator > 0 else 0.0
        return cls(r, z0, a, float(estimate), se)

    def _in_tail(self, level: float) -> bool:
        return min(level, 1 - level) * len(self.replicates) < TAIL_REPLICATES and self.se > 0

    def bound(self, level: float) -> float:
        """The BCa quantile at nominal level `level` (alpha for a lower bound, 1 - alpha for an upper one)."""
        if self._in_tail(level):
            return self.estimate + _NORMAL.inv_cdf(level) * self.se
        z = self.z0 + _NORMAL.inv_cdf(level)
        shifted = _NORMAL.cdf(self.z0 + z / (1 - self.a * z)) if 1 - self.a * z > 0 else 1.0
        return float(np.quantile(self.replicates, min(max(shifted, 0.0), 1.0)))

    def level_at(self, value: float) -> float:
        """The nominal level whose bound equals `value` (the inverse of `bound`): a one-sided p-value."""
        if self.se > 0:
            normal = _NORMAL.cdf((value - self.estimate) / self.se)
            if self._in_tail(normal):
                return normal
        r = self.replicates
        share = float(np.searchsorted(r, value, side="right")) / len(r)
        share = min(max(share, 0.5 / len(r)), 1 - 0.5 / len(r))
        w = _NORMAL.inv_cdf(share) - self.z0
        u = w / (1 + self.a * w) if 1 + self.a * w > 0 else math.inf
        return _NORMAL.cdf(u - self.z0) if math.isfinite(u) else 1.0


def prepare_bootstrap(
    model: Scores,
    base: Scores,
    *,
    metric: str = "metric",
    higher_is_better: bool = True,
    margin: float = DEFAULT_MARGIN,
    alpha: float = DEFAULT_ALPHA,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 1,
    clusters: Sequence[str] | None = None,
    min_samples: int = DEFAULT_MIN_SAMPLES,
) -> Prepared:
    """BCa bootstrap of the mean paired gain (see paired_bootstrap)."""
    _check_levels(alpha, margin)
    m, b = _validate_pairs(model, base, metric)
    gains = (m - b) if higher_is_better else (b - m)
    sums, counts = _units(gains, clusters, metric)
    replicates = bootstrap_replicates(sums, counts, resamples, seed)
    bca = BCa.fit(replicates, sums, counts)
    p_below_margin = bca.level_at(-margin)  # the level at which the lower bound reaches -margin
    return Prepared(
        metric=metric,
        method=f"paired BCa bootstrap, {resamples} resamples"
        + (f", {len(sums)} clusters" if clusters is not None else ""),
        model=m,
        base=b,
        higher_is_better=higher_is_better,
        margin=margin,
        alpha=alpha,
        min_samples=min_samples,
        low=bca.bound(alpha),
        upper=lambda level: bca.bound(1 - level),
        p_regression=1 - p_below_margin,
        p_noninferior=p_below_margin,
        p_superior=bca.level_at(0.0),
        se=bca.se,
        units=len(sums),
        unit="pairs" if clusters is None else "clusters",
    )


def paired_bootstrap(
    model: Scores, base: Scores, *, regression_alpha: float | None = None, **kwargs: Any
) -> Comparison:
    """BCa bootstrap of the mean paired gain.

    With `clusters`, whole clusters are resampled and the gain is the pooled mean over the drawn clusters' samples
    (a cluster bootstrap, BCa on the cluster sums): repetitions of one question move together and count as one
    unit of evidence, for the interval and for `min_samples` alike.
    """
    return prepare_bootstrap(model, base, **kwargs).at(regression_alpha)


# -- binary: Tango's score interval ------------------------------------------------------------------------------
CONTINUITY = 0.5  # on the discordant-count difference: measured to keep both sides at <= alpha (studies/README.md)


def tango_statistic(better: int, worse: int, n: int, delta: float, correction: float = CONTINUITY) -> float:
    """Tango's (1998) score statistic for H0: p(model right, base wrong) - p(base right, model wrong) = delta.

    The variance uses the restricted maximum-likelihood estimate of the discordant cell under H0 (closed form),
    which is what makes the test unconditional. `correction` shrinks the count difference towards H0 by 1/2 (a
    continuity correction): without it the regression side reached 3.3-3.4 % at alpha = 2.5 % when few pairs
    disagree (psi = 2 %, n = 1,425); with it both sides stay at or below alpha. Decreasing in `delta`."""
    numerator = better - worse - n * delta
    numerator = math.copysign(max(abs(numerator) - correction, 0.0), numerator)
    a = 2.0 * n
    b = -better - worse + (2.0 * n - better + worse) * delta
    c = -worse * delta * (1 - delta)
    p21 = (math.sqrt(max(b * b - 4 * a * c, 0.0)) - b) / (2 * a)
    variance = n * (2 * p21 + delta * (1 - delta))
    if variance <= 0:
        return 0.0 if numerator == 0 else math.copysign(math.inf, numerator)
    return numerator / math.sqrt(variance)


def _tango_solve(better: int, worse: int, n: int, target: float) -> float:
    """The difference at which Tango's (decreasing) statistic equals `target` (bisection to 1e-12)."""
    lo, hi = -1.0 + 1e-12, 1.0 - 1e-12
    for _ in range(80):
        mid = (lo + hi) / 2
        if tango_statistic(better, worse, n, mid) > target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def tango_lower(better: int, worse: int, n: int, alpha: float) -> float:
    """Lower bound of the difference (model - base) at one-sided level `alpha`."""
    return _tango_solve(better, worse, n, _NORMAL.inv_cdf(1 - alpha))


def tango_upper(better: int, worse: int, n: int, alpha: float) -> float:
    """Upper bound of the difference (model - base) at one-sided level `alpha`."""
    return _tango_solve(better, worse, n, -_NORMAL.inv_cdf(1 - alpha))


def tango_interval(better: int, worse: int, n: int, low_alpha: float, high_alpha: float) -> tuple[float, float]:
    """Bounds of the difference by inverting Tango's statistic: lower at `low_alpha`, upper at `high_alpha`."""
    return tango_lower(better, worse, n, low_alpha), tango_upper(better, worse, n, high_alpha)


def prepare_binary(
    model: Scores,
    base: Scores,
    *,
    metric: str = "accuracy",
    higher_is_better: bool = True,
    margin: float = DEFAULT_MARGIN,
    alpha: float = DEFAULT_ALPHA,
    min_samples: int = DEFAULT_MIN_SAMPLES,
) -> Prepared:
    """Tango's score test for paired 0/1 scores (see paired_binary)."""
    _check_levels(alpha, margin)
    m, b = _validate_pairs(model, base, metric)
    if not np.all(np.isin(m, (0.0, 1.0))) or not np.all(np.isin(b, (0.0, 1.0))):
        raise ValueError(f"{metric}: the paired binary test needs 0/1 scores per sample")
    model_good = m if higher_is_better else 1 - m
    base_good = b if higher_is_better else 1 - b
    worse = int(np.count_nonzero((base_good == 1) & (model_good == 0)))
    better = int(np.count_nonzero((base_good == 0) & (model_good == 1)))
    n = len(m)
    at_margin = tango_statistic(better, worse, n, -margin)
    gain = (better - worse) / n
    discordance = (better + worse + 1) / (n + 1)  # smoothed: an SE of 0 would claim a perfect comparison
    return Prepared(
        metric=metric,
        method=f"Tango score interval, continuity-corrected ({worse} worse, {better} better of {n} pairs)",
        model=m,
        base=b,
        higher_is_better=higher_is_better,
        margin=margin,
        alpha=alpha,
        min_samples=min_samples,
        low=tango_lower(better, worse, n, alpha),
        upper=lambda level: tango_upper(better, worse, n, level),
        p_regression=_NORMAL.cdf(at_margin),
        p_noninferior=1 - _NORMAL.cdf(at_margin),
        p_superior=1 - _NORMAL.cdf(tango_statistic(better, worse, n, 0.0)),
        se=math.sqrt(max(discordance - gain * gain, 0.0) / n),
        units=n,
    )


def paired_binary(model: Scores, base: Scores, *, regression_alpha: float | None = None, **kwargs: Any) -> Comparison:
    """Tango's score test and interval for the difference of paired proportions, with a non-inferiority margin.

    Of n pairs, `worse` are base-right/model-wrong and `better` the reverse. The statistic at delta = -margin gives
    the regression and non-inferiority p-values; the interval is the same statistic inverted, so they agree. With
    no discordant pair the interval still has a width (about +-z^2/n), unlike a test that plugs in the observed
    discordance, which declared any k/n <= margin non-inferior automatically.
    """
    return prepare_binary(model, base, **kwargs).at(regression_alpha)


def _check_levels(alpha: float, margin: float) -> None:
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5) (one-sided level), got {alpha}")
    if margin < 0 or not math.isfinite(margin):
        raise ValueError(f"margin must be a finite number >= 0, got {margin}")


def prepare(kind: str, model: Scores, base: Scores, **kwargs: Any) -> Prepared:
    """Pick the test by the metric's kind: Tango's interval for binary, the BCa bootstrap for continuous.

    Binary scores with clusters (repeated measurements of one question) go to the cluster bootstrap: the score
    test assumes independent pairs.
    """
    if kind == "binary" and kwargs.get("clusters") is None:
        for bootstrap_only in ("resamples", "seed", "clusters"):
            kwargs.pop(bootstrap_only, None)
        return prepare_binary(model, base, **kwargs)
    return prepare_bootstrap(model, base, **kwargs)


def compare(
    kind: str, model: Scores, base: Scores, *, regression_alpha: float | None = None, **kwargs: Any
) -> Comparison:
    """One metric's comparison (prepare, then the regression claim at `regression_alpha`, default alpha)."""
    return prepare(kind, model, base, **kwargs).at(regression_alpha)


def holm_levels(p_values: Sequence[float], alpha: float) -> list[float]:
    """The one-sided level each hypothesis is tested at by Holm's step-down procedure (family-wise error alpha).

    Sorted by p-value, the i-th of m (from 0) is tested at alpha / (m - i) while every earlier one was rejected.
    From the first that is not rejected, every later one keeps that level: their p-values are larger, so they are
    not rejected either. Testing each at its level therefore gives exactly Holm's decisions, and each comparison
    can show an interval at its own level that agrees with its verdict."""
    m = len(p_values)
    levels = [alpha] * m
    stopped: float | None = None
    for rank, i in enumerate(sorted(range(m), key=lambda j: p_values[j])):
        level = alpha / (m - rank) if stopped is None else stopped
        levels[i] = level
        if stopped is None and p_values[i] > level:
            stopped = level
    return levels


def mean_ci(
    values: Scores,
    *,
    alpha: float = DEFAULT_ALPHA,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 1,
) -> tuple[float, float]:
    """Percentile bootstrap (1 - 2*alpha) interval of one model's mean score, for the report."""
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        raise ValueError("no values")
    (means,) = resampled_means([v], resamples, np.random.default_rng(seed))
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return float(low), float(high)


def resampled_means(
    samples: Sequence[npt.NDArray[np.float64]], resamples: int, rng: np.random.Generator
) -> list[npt.NDArray[np.float64]]:
    """Each sample's mean in each of `resamples` bootstrap resamples, every sample resampled on its own (for
    independent samples; paired data is one sample). Drawn in chunks of about two million values, so memory stays
    flat however many resamples are asked for."""
    chunk = max(1, 2_000_000 // sum(len(s) for s in samples))
    parts: list[list[npt.NDArray[np.float64]]] = [[] for _ in samples]
    for start in range(0, resamples, chunk):
        n = min(chunk, resamples - start)
        for part, s in zip(parts, samples, strict=True):
            part.append(s[rng.integers(0, len(s), size=(n, len(s)))].mean(axis=1))
    return [np.concatenate(part) for part in parts]
