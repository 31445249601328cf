"""What the plugin hands a test and a conftest: the run's own task instance with the case as the test's parameter,
the `pytest_clue_case_result` hook with each finished case's typed row, and the terminal's time line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from clue.records import CaseRecord
from tests.helpers import REPO, write_replay_matrix
from tests.helpers.replay_project import make_project, write_models

pytest_plugins = ["pytester"]


TASK_TEST = """
import pytest


@pytest.mark.clue_task("longhealth_task1")
def test_longhealth(request, clue_task, clue_model, clue_session):
    assert clue_task is clue_session.catalog.task("longhealth_task1")  # the instance that builds the prompts
    assert clue_task.max_prompt_tokens == 1234  # --clue-longhealth-max-tokens applied to it
    assert clue_model.case == request.node.callspec.id  # the case rides on the parameter
"""


def test_a_test_gets_the_runs_own_task_instance_and_its_case_as_its_parameter(pytester: pytest.Pytester) -> None:
    """Before: the clue_task fixture re-resolved the task by name (`get_task`), an unconfigured instance other than
    the one the session generated with (max_prompt_tokens 8140 whatever the option said), and the case id was
    found by scanning the session's cases for an equal entry."""
    shutil.copytree(REPO / "fixtures/data/longhealth", pytester.path / "data/longhealth")
    write_replay_matrix(pytester.path, {"base": [], "candidate": []})
    pytester.makepyfile(test_task=TASK_TEST)
    pytester.makeini("[pytest]\n")
    result = pytester.runpytest(
        "--clue-matrix", "models.toml", "--clue-data-dir", "data", "--clue-cache-dir", "cache",
        "--clue-reports-dir", "out", "--clue-longhealth-max-tokens", "1234", "-p", "no:cacheprovider",
    )  # fmt: skip
    result.assert_outcomes(passed=2)


HOOK_CONFTEST = """
import json

ROWS = []


def pytest_clue_case_result(config, case):
    ROWS.append({"type": type(case).__name__, "task": case.task, "case": case.case, "outcome": case.outcome,
                 "verdict": case.record.verdict, "primary": case.metrics[case.record.primary_metric].value,
                 "samples": len(case.record.samples), "file": case.results_json})


def pytest_sessionfinish(session):
    with open("rows.json", "w") as f:
        json.dump(ROWS, f)
"""


def test_the_case_result_hook_gets_each_finished_cases_typed_row(pytester: pytest.Pytester) -> None:
    """The hook's payload is the CaseRow the summary and JUnit use: the record without its per-sample rows (what
    rides on a test report), pytest's outcome and the results file, which holds the samples."""
    project = make_project(pytester)
    write_models(project, base_wrong=set(), candidate_wrong={1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})
    project.makeconftest(HOOK_CONFTEST)
    result = project.runpytest(
        "--clue-matrix", "models.toml", "--clue-data-dir", "data", "--clue-cache-dir", "cache",
        "--clue-reports-dir", "out", "-k", "mednli", "-p", "no:cacheprovider",
    )  # fmt: skip
    result.assert_outcomes(passed=1, failed=1)
    rows = {r["case"]: r for r in json.loads((project.path / "rows.json").read_text())}
    assert rows["base"]["type"] == "CaseRow" and rows["base"]["verdict"] == "reference"
    assert rows["candidate"]["verdict"] == "regressed" and rows["candidate"]["outcome"] == "failed"
    written = CaseRecord.from_json(json.loads(Path(rows["candidate"]["file"]).read_text()), "results file")
    assert rows["candidate"]["primary"] == written.metrics["accuracy"].value < 1.0
    assert rows["candidate"]["samples"] == 0 and len(written.samples) == 50


def test_the_time_line_names_each_task_s_contamination_probes_largest_first() -> None:
    """The diagnostic's cost per task is said on every run (README: its cost), not only in clue-session.json."""
    from clue.plugin.terminal import time_line
    from clue.records import RunStats

    probes = RunStats(
        backend_s=80.0, scoring_s=5.0, wall_s=100.0, contamination_s=30.0,
        contamination_task_s={"meqsum": 6.0, "longhealth": 24.0},
    )  # fmt: skip
    assert time_line(probes) == (
        "time: 100.0 s in this session, 80.0 s in model backends (30.0 s of it contamination probes: "
        "longhealth 24.0 s, meqsum 6.0 s), 5.0 s scoring"
    )
    plain = RunStats(backend_s=8.0, scoring_s=1.0, workers=2, wall_s=10.0)
    assert time_line(plain) == (
        "time: 10.0 s in this session, 8.0 s in model backends, 1.0 s scoring "
        "(2 workers; backend and scoring times summed over them)"
    )
