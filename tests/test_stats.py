"""The paired tests: exact values against scipy, verdict rules, determinism, clusters, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from clue import stats


def pairs(worse: int, better: int, both_right: int, both_wrong: int) -> tuple[list[float], list[float]]:
    model = [0.0] * worse + [1.0] * better + [1.0] * both_right + [0.0] * both_wrong
    base = [1.0] * worse + [0.0] * better + [1.0] * both_right + [0.0] * both_wrong
    return model, base


@pytest.mark.parametrize(("x", "k", "p"), [(0, 10, 0.5), (7, 20, 0.3), (15, 15, 0.9), (40, 200, 0.25), (3, 5, 0.0)])
def test_binomial_tail_matches_scipy(x: int, k: int, p: float) -> None:
    assert stats.binom_sf(x, k, p) == pytest.approx(binomtest(x, k, p, alternative="greater").pvalue, abs=1e-12)
    assert stats.binom_cdf(x, k, p) == pytest.approx(binomtest(x, k, p, alternative="less").pvalue, abs=1e-12)


@pytest.mark.parametrize(("x", "k"), [(0, 12), (3, 20), (12, 12), (50, 400)])
def test_clopper_pearson_matches_scipy(x: int, k: int) -> None:
    ci = binomtest(x, k).proportion_ci(confidence_level=0.95, method="exact")
    low, high = stats.clopper_pearson(x, k, 0.025)
    assert low == pytest.approx(ci.low, abs=1e-9)
    assert high == pytest.approx(ci.high, abs=1e-9)


def test_exact_test_with_zero_margin_is_one_sided_mcnemar() -> None:
    model, base = pairs(worse=12, better=3, both_right=30, both_wrong=15)
    result = stats.exact_paired_binary(model, base, margin=0.0)
    assert result.p_regression == pytest.approx(binomtest(12, 15, 0.5, alternative="greater").pvalue)
    assert result.delta == pytest.approx((3 - 12) / 60)
    assert result.n == 60


def test_clear_accuracy_regression_is_regressed() -> None:
    model, base = pairs(worse=25, better=1, both_right=40, both_wrong=34)
    result = stats.exact_paired_binary(model, base)
    assert result.verdict == "regressed"
    assert result.ci_high < -0.02
    assert result.p_regression < 0.025


def test_identical_models_are_non_inferior_not_improved() -> None:
    model, base = pairs(worse=0, better=0, both_right=30, both_wrong=20)
    result = stats.exact_paired_binary(model, base)
    assert result.verdict == "non-inferior"
    assert (result.ci_low, result.ci_high) == (0.0, 0.0)


def test_clear_improvement_never_fails() -> None:
    model, base = pairs(worse=1, better=25, both_right=40, both_wrong=34)
    assert stats.exact_paired_binary(model, base).verdict == "improved"
    assert stats.paired_bootstrap(model, base).verdict == "improved"


def test_small_noisy_difference_is_inconclusive() -> None:
    model, base = pairs(worse=6, better=4, both_right=20, both_wrong=10)
    assert stats.exact_paired_binary(model, base).verdict == "inconclusive"


def test_too_few_pairs_are_inconclusive_whatever_they_show() -> None:
    model, base = pairs(worse=5, better=0, both_right=0, both_wrong=0)
    assert stats.exact_paired_binary(model, base, min_samples=10).verdict == "inconclusive"


def test_exact_ci_and_p_value_agree() -> None:
    """regressed <=> p(regression) < alpha, for many tables (the CI is the inverted test)."""
    for worse in range(0, 20, 3):
        for better in range(0, 20, 4):
            model, base = pairs(worse, better, 30, 20)
            r = stats.exact_paired_binary(model, base, margin=0.03)
            assert (r.verdict == "regressed") == (r.p_regression < r.alpha), (worse, better)


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
    width = lambda r: r.ci_high - r.ci_low  # noqa: E731
    assert width(repeated) == pytest.approx(width(single), rel=0.15)
    assert width(naive) < 0.6 * width(single)


def test_compare_picks_the_test_by_kind() -> None:
    model, base = pairs(3, 2, 20, 20)
    assert stats.compare("binary", model, base).method.startswith("exact")
    assert stats.compare("continuous", model, base).method.startswith("paired bootstrap")
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
        stats.exact_paired_binary(model, base)


def test_bad_levels_are_rejected() -> None:
    with pytest.raises(ValueError, match="alpha"):
        stats.paired_bootstrap([1.0], [1.0], alpha=0.7)
    with pytest.raises(ValueError, match="margin"):
        stats.paired_bootstrap([1.0], [1.0], margin=-0.1)


def test_mean_ci_brackets_the_mean() -> None:
    values = np.random.default_rng(5).random(200)
    low, high = stats.mean_ci(values)
    assert low < values.mean() < high
