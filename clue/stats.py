"""Paired comparisons of a model against its base model, sample by sample.

Both tests work on the *gain* per sample: model minus base, sign-flipped for metrics where lower is better, so
that a positive gain always means "the model is better". A two-sided (1 - 2*alpha) confidence interval for the
mean gain decides the verdict (alpha is one-sided; the default 0.025 gives the 95 % interval that
non-inferiority trials use):

- regressed:     the whole interval lies below -margin   (the model is worse by more than the margin)
- improved:      the whole interval lies above 0
- non-inferior:  the whole interval lies above -margin
- inconclusive:  anything else, or fewer pairs than `min_samples`

Binary metrics (accuracy) use an exact conditional (McNemar-style) test on the discordant pairs; continuous
metrics use a seeded paired bootstrap, optionally resampling whole clusters (questions, patients) so that
repeated measurements of one unit do not inflate n.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

Verdict = Literal["regressed", "inconclusive", "non-inferior", "improved"]

DEFAULT_ALPHA = 0.025
DEFAULT_MARGIN = 0.02
DEFAULT_RESAMPLES = 10_000
DEFAULT_MIN_SAMPLES = 10


@dataclass(frozen=True)
class Comparison:
    """The outcome of one paired comparison. `delta`, `ci_low` and `ci_high` are model minus base in the metric's
    own units (so negative is worse for a higher-is-better metric); p-values are one-sided."""

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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """One line for failure messages: metric, base, model, delta, CI, p, n."""
        return (
            f"{self.metric}: base={self.base_mean:.4f} model={self.model_mean:.4f} "
            f"delta={self.delta:+.4f} {self.confidence:.0%} CI [{self.ci_low:+.4f}, {self.ci_high:+.4f}] "
            f"margin={self.margin:g} p(regression)={self.p_regression:.4g} n={self.n} ({self.method}) "
            f"-> {self.verdict}"
        )


def _verdict(gain_low: float, gain_high: float, margin: float, n: int, min_samples: int) -> Verdict:
    if n < min_samples:
        return "inconclusive"
    if gain_high < -margin:
        return "regressed"
    if gain_low > 0:
        return "improved"
    if gain_low > -margin:
        return "non-inferior"
    return "inconclusive"


def _validate_pairs(
    model: Sequence[float], base: Sequence[float], metric: str
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


def _finish(
    metric: str,
    method: str,
    m: npt.NDArray[np.float64],
    b: npt.NDArray[np.float64],
    gain_ci: tuple[float, float],
    p: tuple[float, float, float],
    *,
    higher_is_better: bool,
    margin: float,
    alpha: float,
    min_samples: int,
) -> Comparison:
    gain_low, gain_high = gain_ci
    # back to the metric's own units: for lower-is-better, delta = -gain and the interval flips
    ci_low, ci_high = (gain_low, gain_high) if higher_is_better else (-gain_high, -gain_low)
    return Comparison(
        metric=metric,
        method=method,
        n=len(m),
        base_mean=float(b.mean()),
        model_mean=float(m.mean()),
        delta=float(m.mean() - b.mean()),
        ci_low=float(ci_low),
        ci_high=float(ci_high),
        confidence=1 - 2 * alpha,
        margin=margin,
        alpha=alpha,
        higher_is_better=higher_is_better,
        p_regression=float(p[0]),
        p_noninferior=float(p[1]),
        p_superior=float(p[2]),
        verdict=_verdict(gain_low, gain_high, margin, len(m), min_samples),
    )


def paired_bootstrap(
    model: Sequence[float],
    base: Sequence[float],
    *,
    metric: str = "metric",
    higher_is_better: bool = True,
    margin: float = DEFAULT_MARGIN,
    alpha: float = DEFAULT_ALPHA,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 1,
    clusters: Sequence[str] | None = None,
    min_samples: int = DEFAULT_MIN_SAMPLES,
) -> Comparison:
    """Percentile bootstrap of the mean paired gain.

    With `clusters`, whole clusters are resampled and the gain is the pooled mean over the drawn clusters' samples
    (a cluster bootstrap): repetitions of one question move together and count as one unit of evidence.
    """
    _check_levels(alpha, margin)
    m, b = _validate_pairs(model, base, metric)
    gains = (m - b) if higher_is_better else (b - m)
    if clusters is None:
        sums, counts = gains, np.ones_like(gains)
    else:
        if len(clusters) != len(gains):
            raise ValueError(f"{metric}: {len(clusters)} cluster labels for {len(gains)} samples")
        labels, inverse = np.unique(np.asarray(clusters, dtype=str), return_inverse=True)
        sums = np.bincount(inverse, weights=gains, minlength=len(labels)).astype(float)
        counts = np.bincount(inverse, minlength=len(labels)).astype(float)
    rng = np.random.default_rng(seed)
    n_units = len(sums)
    replicates = np.empty(resamples)
    chunk = max(1, 2_000_000 // max(n_units, 1))  # bound memory: at most ~2M indices at a time
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        idx = rng.integers(0, n_units, size=(stop - start, n_units))
        replicates[start:stop] = sums[idx].sum(axis=1) / counts[idx].sum(axis=1)
    gain_low, gain_high = np.quantile(replicates, [alpha, 1 - alpha])
    p_reg = (np.count_nonzero(replicates >= -margin) + 1) / (resamples + 1)
    p_ni = (np.count_nonzero(replicates <= -margin) + 1) / (resamples + 1)
    p_sup = (np.count_nonzero(replicates <= 0) + 1) / (resamples + 1)
    method = f"paired bootstrap, {resamples} resamples" + (f", {n_units} clusters" if clusters is not None else "")
    return _finish(
        metric,
        method,
        m,
        b,
        (float(gain_low), float(gain_high)),
        (p_reg, p_ni, p_sup),
        higher_is_better=higher_is_better,
        margin=margin,
        alpha=alpha,
        min_samples=min_samples,
    )


def _log_binom_pmf(i: int, k: int, p: float) -> float:
    if p <= 0.0:
        return 0.0 if i == 0 else -math.inf
    if p >= 1.0:
        return 0.0 if i == k else -math.inf
    return math.lgamma(k + 1) - math.lgamma(i + 1) - math.lgamma(k - i + 1) + i * math.log(p) + (k - i) * math.log1p(-p)


def binom_sf(x: int, k: int, p: float) -> float:
    """P(X >= x) for X ~ Binomial(k, p), summed in log space so large k does not overflow."""
    if x <= 0:
        return 1.0
    if x > k:
        return 0.0
    logs = [_log_binom_pmf(i, k, p) for i in range(x, k + 1)]
    top = max(logs)
    if top == -math.inf:
        return 0.0
    return min(1.0, math.exp(top) * sum(math.exp(v - top) for v in logs))


def binom_cdf(x: int, k: int, p: float) -> float:
    """P(X <= x) for X ~ Binomial(k, p)."""
    return 1.0 - binom_sf(x + 1, k, p) if x < k else 1.0


def _solve_increasing(f: Any, target: float) -> float:
    """The p in [0, 1] where the non-decreasing function f(p) crosses target (bisection, 1e-12)."""
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if f(mid) < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def clopper_pearson(x: int, k: int, alpha: float) -> tuple[float, float]:
    """Exact one-sided-alpha bounds for a binomial proportion (the 1 - 2*alpha Clopper-Pearson interval)."""
    lower = 0.0 if x == 0 else _solve_increasing(lambda p: binom_sf(x, k, p), alpha)
    upper = 1.0 if x == k else _solve_increasing(lambda p: 1.0 - binom_cdf(x, k, p), 1.0 - alpha)
    return lower, upper


def exact_paired_binary(
    model: Sequence[float],
    base: Sequence[float],
    *,
    metric: str = "accuracy",
    higher_is_better: bool = True,
    margin: float = DEFAULT_MARGIN,
    alpha: float = DEFAULT_ALPHA,
    min_samples: int = DEFAULT_MIN_SAMPLES,
) -> Comparison:
    """Exact conditional test on discordant pairs, with a non-inferiority margin.

    Of n pairs, `worse` are base-right/model-wrong and `better` the reverse; k = worse + better. Conditional on k,
    worse ~ Binomial(k, pi). A mean gain of delta corresponds to pi = (psi - delta) / (2 psi) with psi = k / n the
    observed discordance (plugged in). With margin 0 the regression p-value is the one-sided exact McNemar test.
    The confidence interval is the Clopper-Pearson interval for pi mapped to delta, so it agrees with the p-values.
    """
    _check_levels(alpha, margin)
    m, b = _validate_pairs(model, base, metric)
    if not np.all(np.isin(m, (0.0, 1.0))) or not np.all(np.isin(b, (0.0, 1.0))):
        raise ValueError(f"{metric}: the exact paired test needs 0/1 scores per sample")
    model_good = m if higher_is_better else 1 - m
    base_good = b if higher_is_better else 1 - b
    worse = int(np.count_nonzero((base_good == 1) & (model_good == 0)))
    better = int(np.count_nonzero((base_good == 0) & (model_good == 1)))
    n, k = len(m), worse + better
    psi = k / n

    def pi_at(delta: float) -> float:
        return math.inf if psi == 0 else (psi - delta) / (2 * psi)

    pi_margin = pi_at(-margin)
    # H0 "gain >= -margin" (pi <= pi_margin): many `worse` pairs are evidence against it.
    p_reg = 1.0 if pi_margin >= 1 else binom_sf(worse, k, pi_margin)
    # H0 "gain <= -margin" (pi >= pi_margin): few `worse` pairs are evidence against it.
    p_ni = 0.0 if pi_margin > 1 else binom_cdf(worse, k, min(pi_margin, 1.0))
    p_sup = binom_cdf(worse, k, 0.5) if k else 1.0
    if k == 0:
        gain_ci = (0.0, 0.0)
    else:
        pi_low, pi_high = clopper_pearson(worse, k, alpha)
        gain_ci = (psi * (1 - 2 * pi_high), psi * (1 - 2 * pi_low))
    method = f"exact conditional McNemar ({worse} worse, {better} better of {n} pairs)"
    return _finish(
        metric,
        method,
        m,
        b,
        gain_ci,
        (p_reg, p_ni, p_sup),
        higher_is_better=higher_is_better,
        margin=margin,
        alpha=alpha,
        min_samples=min_samples,
    )


def _check_levels(alpha: float, margin: float) -> None:
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5) (one-sided level), got {alpha}")
    if margin < 0 or not math.isfinite(margin):
        raise ValueError(f"margin must be a finite number >= 0, got {margin}")


def compare(
    kind: str,
    model: Sequence[float],
    base: Sequence[float],
    **kwargs: Any,
) -> Comparison:
    """Pick the test by the metric's kind: exact for binary, bootstrap for continuous.

    Binary scores with clusters (repeated measurements of one question) go to the cluster bootstrap: the exact
    test assumes independent pairs.
    """
    if kind == "binary" and kwargs.get("clusters") is None:
        kwargs.pop("resamples", None)
        kwargs.pop("seed", None)
        kwargs.pop("clusters", None)
        return exact_paired_binary(model, base, **kwargs)
    return paired_bootstrap(model, base, **kwargs)


def mean_ci(
    values: Sequence[float],
    *,
    alpha: float = DEFAULT_ALPHA,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 1,
) -> tuple[float, float]:
    """Percentile bootstrap (1 - 2*alpha) interval of one model's mean score, for the report."""
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        raise ValueError("no values")
    rng = np.random.default_rng(seed)
    chunk = max(1, 2_000_000 // len(v))
    means = np.concatenate(
        [
            v[rng.integers(0, len(v), size=(min(chunk, resamples - start), len(v)))].mean(axis=1)
            for start in range(0, resamples, chunk)
        ]
    )
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return float(low), float(high)
