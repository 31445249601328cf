"""The task-level decision: Holm across a case's gated metrics, verdict rules, clusters, no pytest dependency."""

from __future__ import annotations

import subprocess
import sys
from statistics import NormalDist

import numpy as np
import pytest

from clue.statistics import paired as stats
from clue.statistics.calibration import Scenario, correlated_continuous, shifts
from clue.statistics.decision import GateConfig, MetricScores, decide
from clue.types import MetricSpec


def test_family_wise_false_failure_of_a_four_metric_case_at_the_margin() -> None:
    """Seeded simulation through `decide`: four correlated metrics (rho 0.6), each exactly -margin worse. Holm keeps
    the case's false-failure rate near alpha; testing every metric at full alpha (the old gate) does not."""
    margins = [0.02] * 4
    scenario = Scenario("4 metrics", correlated_continuous(150, [0.2] * 4, margins, 0.6, shifts(margins)), 150)
    rng = np.random.default_rng(7)
    holm = unadjusted = 0
    sims = 300
    for i in range(sims):
        decision = decide(scenario.draw(rng), GateConfig(resamples=500, seed=i))
        holm += decision.verdict == "regressed"
        unadjusted += any(c.p_regression < c.alpha for c in decision.comparisons)
    assert holm / sims <= 0.045  # alpha 0.025 + Monte Carlo noise (SE ~0.9 points at 300 cases)
    assert unadjusted / sims >= 1.5 * holm / sims and unadjusted / sims > 0.04


def metric(name: str, gate: bool = True, kind: str = "continuous") -> MetricSpec:
    return MetricSpec(name, name, gate=gate, kind=kind)  # type: ignore[arg-type]


def test_holm_level_is_shown_and_agrees_with_the_verdict() -> None:
    rng = np.random.default_rng(3)
    base = rng.random(200)
    clear = base - 0.2 + rng.normal(0, 0.05, 200)  # regressed at any level
    borderline = base - 0.04 + rng.normal(0, 0.1, 200)
    metrics = [MetricScores(metric("a"), clear, base, 0.02), MetricScores(metric("b"), borderline, base, 0.02)]
    decision = decide(metrics, GateConfig(resamples=2000))
    a, _ = decision.comparisons
    assert a.regression_alpha == pytest.approx(0.0125)  # the smaller p-value is tested at alpha / 2
    assert decision.verdict == "regressed"
    for c in decision.comparisons:
        assert (c.verdict == "regressed") == (c.ci_high < -c.margin)
        assert (c.verdict == "regressed") == (c.p_regression <= c.regression_alpha)
    assert "Holm-adjusted level 0.0125" in a.describe()


def test_non_gated_metrics_are_information_only() -> None:
    rng = np.random.default_rng(4)
    base = rng.random(100)
    metrics = [
        MetricScores(metric("gated"), base + 0.1, base, 0.02),
        MetricScores(metric("info", gate=False), base - 0.3, base, 0.02),
    ]
    decision = decide(metrics, GateConfig(resamples=500))
    assert decision.verdict == "improved" and decision.gated == frozenset({"gated"})
    info = decision.comparisons[1]
    assert info.verdict == "regressed" and info.regression_alpha == 0.025  # shown, not adjusted, not gating


def test_min_samples_counts_clusters_not_repetitions() -> None:
    base = np.tile([1.0, 0.0, 1.0, 1.0, 0.0], 12)  # 60 samples
    model = base.copy()
    clusters = [f"q{i // 12}" for i in range(60)]  # 5 questions asked 12 times each
    decision = decide(
        [MetricScores(metric("accuracy", kind="binary"), model, base, 0.02)], GateConfig(resamples=200), clusters
    )
    (c,) = decision.comparisons
    assert c.units == 5 and c.verdict == "inconclusive"
    assert "n = 5 clusters < min-samples 10" in c.describe()


def test_mde_is_in_every_comparison_and_flags_a_too_small_case() -> None:
    rng = np.random.default_rng(8)
    base = rng.random(40)
    model = base + rng.normal(0, 0.2, 40)
    c = stats.paired_bootstrap(model, base, resamples=2000)
    expected = (NormalDist().inv_cdf(0.975) + NormalDist().inv_cdf(0.8)) * c.se
    assert c.mde == pytest.approx(expected) and c.mde > c.margin
    if c.verdict == "inconclusive":
        assert "MDE" in c.reason()


def test_the_decision_imports_without_pytest() -> None:
    code = "import sys, clue.statistics.decision, clue.statistics.paired; assert 'pytest' not in sys.modules, 'pytest'"
    subprocess.run([sys.executable, "-c", code], check=True)
