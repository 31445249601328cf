"""The paired tests: exact values against scipy, verdict rules, determinism, clusters, and bad input."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest
from scipy.optimize import brentq, minimize_scalar
from scipy.stats import bootstrap

from clue.statistics import paired as stats


def pairs(worse: int, better: int, both_right: int, both_wrong: int) -> tuple[list[float], list[float]]:
    model = [0.0] * worse + [1.0] * better + [1.0] * both_right + [0.0] * both_wrong
    base = [1.0] * worse + [0.0] * better + [1.0] * both_right + [0.0] * both_wrong
    return model, base


def tango_reference(better: int, worse: int, n: int, delta: float) -> float:
    """An independent Tango score statistic: the restricted MLE of the discordant cell by numerical maximisation
    of the multinomial likelihood under p12 - p21 = delta (scipy), not the closed form clue uses."""
    rest = n - better - worse

    def negative_log_likelihood(p21: float) -> float:
        total = 0.0
        for count, prob in ((better, p21 + delta), (worse, p21), (rest, 1 - 2 * p21 - delta)):
            if count:
                total -= count * math.log(prob)
        return total

    lo, hi = max(0.0, -delta) + 1e-13, (1 - delta) / 2 - 1e-13
    p21 = minimize_scalar(negative_log_likelihood, bounds=(lo, hi), method="bounded", options={"xatol": 1e-14}).x
    return (better - worse - n * delta) / math.sqrt(n * (2 * p21 + delta * (1 - delta)))


@pytest.mark.parametrize(("better", "worse", "n"), [(3, 32, 1425), (10, 10, 100), (1, 7, 21), (0, 5, 50), (20, 4, 300)])
def test_tango_statistic_and_interval_match_an_independent_implementation(better: int, worse: int, n: int) -> None:
    for delta in (-0.05, -0.02, 0.0, 0.03):
        if better + worse == 0 and delta == 0:
            continue
        assert stats.tango_statistic(better, worse, n, delta, correction=0.0) == pytest.approx(
            tango_reference(better, worse, n, delta), rel=1e-5
        )
        # the continuity correction moves the count difference 1/2 towards H0, nothing else
        difference = better - worse - n * delta
        shifted = 0.0 if difference == 0 else tango_reference(better, worse, n, delta) * (1 - 0.5 / abs(difference))
        assert stats.tango_statistic(better, worse, n, delta) == pytest.approx(shifted, rel=1e-5)
    z = NormalDist().inv_cdf(0.975)

    def corrected(d: float) -> float:
        return tango_reference(better, worse, n, d) * max(0.0, 1 - 0.5 / abs(better - worse - n * d))

    low = brentq(lambda d: corrected(d) - z, -0.999, (better - worse) / n - 0.6 / n)
    high = brentq(lambda d: corrected(d) + z, (better - worse) / n + 0.6 / n, 0.999)
    assert stats.tango_interval(better, worse, n, 0.025, 0.025) == pytest.approx((low, high), abs=1e-6)


def test_tango_interval_has_width_without_discordant_pairs() -> None:
    """The plug-in conditional test gave [0, 0] here and called any k/n <= margin non-inferior; Tango's interval
    for 0 of 1,425 discordant is about +-z^2/n: (n d - 1/2) / sqrt(n d (1 - d)) = z at the bound."""
    low, high = stats.tango_interval(0, 0, 1425, 0.025, 0.025)
    z = NormalDist().inv_cdf(0.975)
    assert (1425 * high - 0.5) / math.sqrt(1425 * high * (1 - high)) == pytest.approx(z, rel=1e-6)
    assert low == pytest.approx(-high) and 0.002 < high < 0.004


def test_few_discordant_pairs_at_the_margin_are_not_automatically_non_inferior() -> None:
    """k/n = 28/1425 < margin 0.02, all of them worse: the old plug-in test said non-inferior (its interval could
    not reach below -k/n); the model is 2 points worse, which is exactly the margin."""
    model, base = pairs(worse=28, better=0, both_right=1000, both_wrong=397)
    result = stats.paired_binary(model, base)
    assert result.verdict == "inconclusive" and result.ci_low < -0.02


def test_clear_accuracy_regression_is_regressed() -> None:
    model, base = pairs(worse=25, better=1, both_right=40, both_wrong=34)
    result = stats.paired_binary(model, base)
    assert result.verdict == "regressed"
    assert result.ci_high < -0.02
    assert result.p_regression < 0.025


def test_identical_models_are_non_inferior_not_improved() -> None:
    model, base = pairs(worse=0, better=0, both_right=300, both_wrong=200)
    result = stats.paired_binary(model, base)
    assert result.verdict == "non-inferior"
    assert -0.02 < result.ci_low < 0 < result.ci_high < 0.02


def test_clear_improvement_never_fails() -> None:
    model, base = pairs(worse=1, better=25, both_right=40, both_wrong=34)
    assert stats.paired_binary(model, base).verdict == "improved"
    assert stats.paired_bootstrap(model, base).verdict == "improved"


def test_small_noisy_difference_is_inconclusive_and_says_why() -> None:
    model, base = pairs(worse=6, better=4, both_right=20, both_wrong=10)
    result = stats.paired_binary(model, base)
    assert result.verdict == "inconclusive"
    assert "MDE" in result.reason() and result.mde > result.margin


def test_too_few_pairs_are_inconclusive_whatever_they_show() -> None:
    model, base = pairs(worse=5, better=0, both_right=0, both_wrong=0)
    result = stats.paired_binary(model, base, min_samples=10)
    assert result.verdict == "inconclusive" and "n = 5 pairs < min-samples 10" in result.describe()


def test_binary_interval_and_p_values_agree() -> None:
    """regressed <=> p(regression) < alpha and non-inferior-or-better <=> p(non-inferiority) < alpha."""
    for worse in range(0, 40, 3):
        for better in range(0, 40, 4):
            model, base = pairs(worse, better, 300, 200)
            r = stats.paired_binary(model, base, margin=0.03)
            assert (r.verdict == "regressed") == (r.p_regression < r.alpha), (worse, better)
            assert (r.verdict in ("non-inferior", "improved")) == (r.p_noninferior < r.alpha), (worse, better)


def test_bca_matches_scipy_paired_bca() -> None:
    """clue's BCa interval against scipy.stats.bootstrap(method="BCa", paired=True) on skewed gains (candidate =
    base except ~7 % failed samples): equal within Monte Carlo error."""
    rng = np.random.default_rng(11)
    base = rng.beta(2, 5, 237)
    model = np.where(rng.random(237) < 0.07, 0.0, base)
    ours = stats.paired_bootstrap(model, base, resamples=40_000, seed=3)
    theirs = bootstrap(
        (model, base),
        lambda m, b, axis=-1: np.mean(m - b, axis=axis),
        paired=True,
        method="BCa",
        confidence_level=0.95,
        n_resamples=40_000,
        random_state=np.random.default_rng(4),
    ).confidence_interval
    assert ours.ci_low == pytest.approx(theirs.low, abs=0.08 * ours.se)
    assert ours.ci_high == pytest.approx(theirs.high, abs=0.08 * ours.se)
    percentile = np.quantile(stats.bootstrap_replicates(model - base, np.ones(237), 40_000, 3), [0.025, 0.975])
    assert abs(ours.ci_low - percentile[0]) > 0.1 * ours.se  # the correction matters on this data


def test_bca_acceleration_of_a_mean_is_the_closed_form() -> None:
    x = np.random.default_rng(2).exponential(size=50)
    bca = stats.BCa.fit(np.array([x.mean()] * 10), x, np.ones(50))
    d = x - x.mean()
    assert bca.a == pytest.approx(np.sum(d**3) / (6 * np.sum(d**2) ** 1.5))


def test_bca_p_values_invert_the_bounds() -> None:
    rng = np.random.default_rng(5)
    base = rng.random(150)
    model = base - 0.03 + rng.normal(0, 0.1, 150)
    r = stats.paired_bootstrap(model, base, margin=0.02)
    at_its_own_level = stats.paired_bootstrap(model, base, margin=0.02, regression_alpha=min(r.p_regression, 0.49))
    assert at_its_own_level.ci_high == pytest.approx(-0.02, abs=0.002)


def test_holm_levels_by_hand() -> None:
    # sorted 0.001 (tested at a/4, rejected), 0.004 (a/3, rejected), 0.02 (a/2, not rejected: stop), 0.5 (a/2)
    assert stats.holm_levels([0.001, 0.02, 0.004, 0.5], 0.025) == pytest.approx([0.025 / 4, 0.0125, 0.025 / 3, 0.0125])
    assert stats.holm_levels([0.3], 0.025) == [0.025]
    assert stats.holm_levels([], 0.025) == []


def test_bootstrap_is_seeded_and_reproducible() -> None:
    rng = np.random.default_rng(3)
    base = rng.random(80)
    model = base - 0.05 + rng.normal(0, 0.1, 80)
    a = stats.paired_bootstrap(model, base, seed=7)
    b = stats.paired_bootstrap(model, base, seed=7)
    c = stats.paired_bootstrap(model, base, seed=8)
    assert a == b
    assert (a.ci_low, a.ci_high) != (c.ci_low, c.ci_high)


def test_bootstrap_detects_a_continuous_regression_and_reports_units() -> None:
    rng = np.random.default_rng(0)
    base = rng.uniform(0.3, 0.7, 100)
    model = base - 0.10 + rng.normal(0, 0.02, 100)
    r = stats.paired_bootstrap(model, base, metric="rougeL")
    assert r.verdict == "regressed"
    assert r.ci_low < r.delta < r.ci_high < -0.02
    assert r.delta == pytest.approx(float(np.mean(model - base)))


def test_lower_is_better_metric_flips_direction() -> None:
    base = [0.5] * 40
    model = [0.7] * 40  # higher error rate: worse
    r = stats.paired_bootstrap(model, base, higher_is_better=False)
    assert r.verdict == "regressed"
    assert r.delta == pytest.approx(0.2)
    assert r.ci_low == pytest.approx(0.2) and r.ci_high == pytest.approx(0.2)


def test_cluster_bootstrap_does_not_let_repetitions_inflate_n() -> None:
    """Five identical repetitions per question carry the evidence of one: the CI must stay as wide."""
    rng = np.random.default_rng(1)
    base = rng.integers(0, 2, 30).astype(float)
    model = np.where(rng.random(30) < 0.3, 1 - base, base)
    single = stats.paired_bootstrap(model, base, clusters=[str(i) for i in range(30)], seed=2)
    repeated = stats.paired_bootstrap(
        np.repeat(model, 5),
        np.repeat(base, 5),
        clusters=[str(i) for i in range(30) for _ in range(5)],
        seed=2,
    )
    naive = stats.paired_bootstrap(np.repeat(model, 5), np.repeat(base, 5), seed=2)

    def width(r: stats.Comparison) -> float:
        return r.ci_high - r.ci_low

    assert width(repeated) == pytest.approx(width(single), rel=0.15)
    assert width(naive) < 0.6 * width(single)


def test_compare_picks_the_test_by_kind() -> None:
    model, base = pairs(3, 2, 20, 20)
    assert stats.compare("binary", model, base).method.startswith("Tango")
    assert stats.compare("continuous", model, base).method.startswith("paired BCa bootstrap")
    assert "clusters" in stats.compare("binary", model, base, clusters=[str(i % 9) for i in range(45)]).method


@pytest.mark.parametrize(
    ("model", "base", "message"),
    [
        ([1.0, 0.0], [1.0], "same number"),
        ([], [], "no paired samples"),
        ([float("nan"), 1.0], [1.0, 1.0], "non-finite score at paired sample index 0"),
        ([0.5, 1.0], [1.0, 1.0], "needs 0/1 scores"),
    ],
)
def test_bad_input_is_named(model: list[float], base: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        stats.paired_binary(model, base)


def test_bad_levels_are_rejected() -> None:
    with pytest.raises(ValueError, match="alpha"):
        stats.paired_bootstrap([1.0], [1.0], alpha=0.7)
    with pytest.raises(ValueError, match="margin"):
        stats.paired_bootstrap([1.0], [1.0], margin=-0.1)


def test_mean_ci_brackets_the_mean() -> None:
    values = np.random.default_rng(5).random(200)
    low, high = stats.mean_ci(values)
    assert low < values.mean() < high
