"""The group-sequential gate (--clue-sequential): its boundaries against published values and a Brownian-motion
simulation, its error rates by seeded simulation through the real decision code, and the plugin end to end on
replayed outputs: an early stop, resuming and extending through the store, xdist agreeing with one process."""

from __future__ import annotations

import json
import math
from statistics import NormalDist

import numpy as np
import pytest

from clue.statistics import sequential
from clue.statistics.calibration import Scenario, paired_binary, simulate_sequential
from clue.statistics.decision import GateConfig, MetricScores
from clue.types import MetricSpec
from tests.e2e.test_baseline import candidate_only
from tests.helpers import junit_suite_properties
from tests.helpers.replay_project import answers, run, scored_indices, write_models

pytest_plugins = ["pytester"]


def test_boundaries_match_the_published_lan_demets_obrien_fleming_values() -> None:
    """gsDesign, Lan-DeMets O'Brien-Fleming spending, 5 equally spaced looks, one-sided 0.025."""
    levels = sequential.boundaries((0.2, 0.4, 0.6, 0.8, 1.0), 0.025)
    z = [NormalDist().inv_cdf(1 - level) for level in levels]
    assert z == pytest.approx([4.8769, 3.3569, 2.6803, 2.2898, 2.0310], abs=2e-3)


def test_boundaries_spend_alpha_on_a_simulated_brownian_motion() -> None:
    fractions = (0.1, 0.25, 0.5, 0.7, 1.0)
    levels = sequential.boundaries(fractions, 0.025)
    rng = np.random.default_rng(7)
    steps = np.diff((0.0, *fractions))
    paths = np.cumsum(rng.standard_normal((400_000, len(fractions))) * np.sqrt(steps), axis=1)
    z = paths / np.sqrt(fractions)
    critical = np.array([NormalDist().inv_cdf(1 - level) for level in levels])
    crossed = (z >= critical).any(axis=1).mean()
    assert crossed == pytest.approx(0.025, abs=0.0015)
    first = (z[:, :2] >= critical[:2]).any(axis=1).mean()  # spent by t = 0.25: alpha(0.25) of the spending function
    assert first == pytest.approx(sequential.obrien_fleming_spent(0.25, 0.025), abs=5e-4)


def test_a_plan_looks_every_n_units_and_ends_at_the_task_size() -> None:
    plan = sequential.Plan.make(237, 100, 0.025)
    assert plan.looks == (100, 200, 237) and plan.levels[-1] < 0.025 and plan.levels[0] < 1e-3
    assert sequential.Plan.make(80, 100, 0.025).levels == (0.025,)  # one look: the fixed gate


def test_the_order_is_seeded_by_task_and_data_and_keeps_clusters_whole() -> None:
    ids = [f"q{i // 3}/{i % 3}" for i in range(30)]
    clusters = [i.split("/")[0] for i in ids]
    first = sequential.order(ids, clusters, "longhealth_task1\0abc")
    assert first == sequential.order(ids, clusters, "longhealth_task1\0abc")
    assert first != sequential.order(ids, clusters, "longhealth_task1\0abd")
    ordered = [clusters[i] for i in first]
    assert all(len(set(ordered[k : k + 3])) == 1 for k in range(0, 30, 3))  # each question's repetitions together
    assert sequential.unit_prefix(ordered, 30, 4) == 12


def test_the_sequential_gate_keeps_its_error_rates_and_stops_early_when_the_answer_is_clear() -> None:
    """Seeded simulation through clue.statistics.decision (Tango's interval, MedNLI-like disagreement), n = 500, a
    look every 100: at the margin both errors stay near alpha; a clearly fine model stops early."""
    config = GateConfig(0.025, 200, 1, 10)
    at_margin = Scenario("at margin", paired_binary(500, 0.10, -0.02, 0.02), 500)
    rates = simulate_sequential(at_margin, 1500, seed=11, config=config, look_every=100)
    assert rates["regressed"] <= 0.035 and rates["non-inferior"] + rates["improved"] <= 0.035
    fine = Scenario("fine", paired_binary(500, 0.10, 0.05, 0.02), 500)
    rates = simulate_sequential(fine, 300, seed=12, config=config, look_every=100)
    assert rates["non-inferior"] + rates["improved"] > 0.95 and rates["used"] < 0.7


def test_a_look_stops_on_a_regression_and_on_non_inferiority() -> None:
    spec = MetricSpec("accuracy", "acc", kind="binary")
    plan = sequential.Plan.make(400, 100, 0.025)
    worse = MetricScores(spec, np.zeros(200), np.ones(200), 0.02)
    result = sequential.look(plan, 1, [worse], GateConfig(0.025, 100, 1, 10))
    assert result.stop and result.boundary == "regressed" and result.units == 200
    same = MetricScores(spec, np.ones(100), np.ones(100), 0.02)
    result = sequential.look(plan, 0, [same], GateConfig(0.025, 100, 1, 10))
    assert not result.stop and result.boundary is None  # 100 identical pairs cannot pass a level of 1e-5
    assert math.isclose(result.level, plan.levels[0])


def test_a_clearly_regressed_candidate_stops_early_and_a_full_run_extends_it(project: pytest.Pytester) -> None:
    write_models(project, base_wrong=set(), candidate_wrong=set(scored_indices()[:40]))
    options = ["-k", "mednli", "--clue-sequential", "--clue-sequential-look-every", "10"]
    result = run(project, *options)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*sequential: look * of 5: * of 50 samples, *% not generated; crossed the regr*"])
    record = json.loads((project.path / "out/results/mednli/candidate.json").read_text())
    stop = record["sequential"]
    assert stop["boundary"] == "regressed" and stop["samples_used"] < 50 and record["n"] == stop["samples_used"]
    assert record["verdict"] == "regressed" and len(record["samples"]) == stop["samples_used"]
    comparison = record["metrics"]["accuracy"]["comparison"]
    assert comparison["alpha"] == pytest.approx(stop["nominal_alpha"])  # the CI is at the look's level
    session = json.loads((project.path / "out/clue-session.json").read_text())
    assert session["generated"]["candidate"] == stop["samples_used"]
    assert "Sequential gate" in (project.path / "out/summary.md").read_text()
    assert "Sequential gate: generation stopped" in (project.path / "out/index.html").read_text()
    props = junit_suite_properties(project.path / "out/junit.xml")
    assert props["clue.mednli[candidate].sequential.boundary"] == "regressed"
    assert int(props["clue.mednli[candidate].sequential.samples_used"]) == stop["samples_used"]
    # the same run again: everything from the store; a full run generates only the rest
    run(project, *options).assert_outcomes(passed=1, failed=1)
    assert json.loads((project.path / "out/clue-session.json").read_text())["generated"].get("candidate", 0) == 0
    run(project, "-k", "mednli").assert_outcomes(passed=1, failed=1)
    session = json.loads((project.path / "out/clue-session.json").read_text())
    assert session["generated"]["candidate"] == 50 - stop["samples_used"]
    assert json.loads((project.path / "out/results/mednli/candidate.json").read_text())["sequential"] is None


def test_against_a_stored_baseline_only_the_candidate_is_generated_and_it_stops_early(
    project: pytest.Pytester,
) -> None:
    """The CI setup (docs/ci.md): a baseline saved by a full run, a sequential gate against it."""
    write_models(project, base_wrong=set(), candidate_wrong=set())
    run(project, "-k", "mednli", "--clue-save-baseline", "b.json").assert_outcomes(passed=2)
    candidate_only(project, ["b.json#base"], answers(set(scored_indices()[:40])))
    result = run(project, "-k", "mednli", "--clue-sequential", "--clue-sequential-look-every", "10")
    result.assert_outcomes(failed=1)
    record = json.loads((project.path / "out/results/mednli/candidate-vs-base.json").read_text())
    assert record["verdict"] == "regressed" and record["sequential"]["samples_used"] < 50
    session = json.loads((project.path / "out/clue-session.json").read_text())
    assert "base" not in session["loads"] and session["generated"]["candidate"] == record["n"]


def test_a_baseline_is_never_saved_from_a_sequential_run(project: pytest.Pytester) -> None:
    write_models(project, base_wrong=set(), candidate_wrong=set())
    result = run(project, "--clue-sequential", "--clue-save-baseline", "b.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--clue-save-baseline with --clue-sequential*save baselines from a full run*"])


def test_k_and_xdist_runs_of_the_sequential_gate_agree_with_one_process(project: pytest.Pytester) -> None:
    write_models(project, base_wrong=set(scored_indices()[:3]), candidate_wrong=set(scored_indices()[10:40]))
    options = ["--clue-sequential", "--clue-sequential-look-every", "10"]
    single = run(project, *options)
    single.assert_outcomes(passed=3, failed=1)
    records = {
        t: json.loads((project.path / f"out/results/{t}/candidate.json").read_text()) for t in ("mednli", "medisumcode")
    }
    parallel = run(project, *options, "-n", "2", "--clue-cache-dir", "cache-2")
    parallel.assert_outcomes(passed=3, failed=1)
    for task, record in records.items():
        again = json.loads((project.path / f"out/results/{task}/candidate.json").read_text())
        assert again["sequential"] == record["sequential"], task
        assert again["metrics"] == record["metrics"], task
    run(project, *options, "-k", "mednli", "--clue-cache-dir", "cache-3").assert_outcomes(passed=1, failed=1)
    selected = json.loads((project.path / "out/results/mednli/candidate.json").read_text())
    assert selected["sequential"] == records["mednli"]["sequential"]
    assert selected["metrics"] == records["mednli"]["metrics"]
