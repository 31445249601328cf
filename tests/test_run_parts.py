"""A run's parts and the records that leave it (issue 25): one task instance per case, the case carried as the
test's parameter, one run object for both front ends, typed records that refuse a malformed file by name, engines
released by the run, each sequential case decided once, and no class grown into the whole engine."""

from __future__ import annotations

import ast
import json
import math
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import clue
from clue.backends.replay import ReplayBackend
from clue.errors import ConfigError
from clue.records import BaselineEntry, CaseRecord, RecordError, RunRecord
from clue.statistics.decision import GateConfig, MetricScores
from clue.statistics.sequential import Look, Plan, drive, run
from clue.types import MetricSpec
from tests.conftest import REPO, write_replay_matrix
from tests.hostile import hostile_values
from tests.report_data import recorded_results
from tests.test_plugin import answers, make_project, mednli_records, write_models

pytest_plugins = ["pytester"]

TASK_TEST = """
import pytest


@pytest.mark.clue_task("longhealth_task1")
def test_longhealth(request, clue_task, clue_model, clue_session):
    assert clue_task is clue_session.task("longhealth_task1")  # the instance that builds the prompts
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


def test_records_round_trip_and_a_malformed_results_file_is_refused_by_name(tmp_path: Path) -> None:
    """Before: `python -m clue.report` on a results file whose metric value was text failed inside the renderer
    with a bare traceback (`ValueError: Unknown format code 'f' for object of type 'str'`), naming neither the
    file nor the field."""
    records = recorded_results(show_samples=True) + recorded_results()
    for data in records:
        assert CaseRecord.from_json(data, "test").to_json() == data
    run_file = {"schema": 1, "results": records, "not_run": [], "strict": False, "interrupted": False}
    assert RunRecord.from_json(run_file, "test").to_json() == run_file
    broken = json.loads(json.dumps(run_file))
    broken["results"][1]["metrics"]["accuracy"]["value"] = "high"
    path = tmp_path / "clue-results.json"
    path.write_text(json.dumps(broken))
    done = subprocess.run([sys.executable, "-m", "clue.report", str(path)], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    expected = f"{path}, results[1] (mednli/candidate), metric accuracy: value is a string of 4 characters, not float"
    assert expected in done.stderr
    with pytest.raises(RecordError, match="schema 2; this clue reads schema 1"):
        CaseRecord.from_json({**records[0], "schema": 2}, "old.json")


def test_a_baseline_entry_reads_back_as_it_was_written(pytester: pytest.Pytester) -> None:
    from clue import baseline

    project = make_project(pytester)
    write_models(project, base_wrong={1, 2}, candidate_wrong={3})
    result = project.runpytest(
        "--clue-matrix", "models.toml", "--clue-data-dir", "data", "--clue-cache-dir", "cache",
        "--clue-reports-dir", "out", "-k", "mednli", "--clue-save-baseline", "b.json", "-p", "no:cacheprovider",
    )  # fmt: skip
    result.assert_outcomes(passed=2)
    loaded = baseline.load(project.path / "b.json")
    entry = loaded.entries[("mednli", "candidate")]
    assert isinstance(entry, BaselineEntry) and entry.n == 50 and len(entry.samples) == 50
    again = project.path / "again.json"
    baseline.write(again, list(loaded.entries.values()))
    assert again.read_text() == (project.path / "b.json").read_text()


def test_evaluate_refuses_by_name_an_option_it_cannot_honour(tmp_path: Path) -> None:
    """Before: clue.evaluate(gpus="0,1") was accepted and ignored."""
    with pytest.raises(ConfigError, match=r"gpus= is not taken here: it splits GPUs among pytest-xdist workers"):
        clue.evaluate(["mednli"], root=tmp_path, gpus="0,1")


def test_the_run_releases_the_engines_its_backends_keep(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A backend class's `release_engines()` is called once when the run ends, from either front end. Before: the
    plugin freed vLLM's pool through sys.modules and clue.evaluate never freed anything. Without write_reports the
    run writes the baseline asked for and nothing else."""
    calls: list[str] = []
    monkeypatch.setattr(ReplayBackend, "release_engines", staticmethod(lambda: calls.append("released")), raising=False)
    (tmp_path / "data/mednli").mkdir(parents=True)
    (tmp_path / "data/mednli/mli_test_v1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in mednli_records()))
    write_replay_matrix(tmp_path, {"base": answers(set()), "candidate": answers({1})})
    done = clue.evaluate(
        ["mednli"], root=tmp_path, matrix=str(tmp_path / "models.toml"), data_dir=str(tmp_path / "data"),
        cache_dir=str(tmp_path / "cache"), reports_dir=str(tmp_path / "out"), save_baseline=str(tmp_path / "b.json"),
    )  # fmt: skip
    assert [r.case for r in done.results] == ["base", "candidate"] and calls == ["released"]
    from clue import baseline

    assert set(baseline.load(tmp_path / "b.json").entries) == {("mednli", "base"), ("mednli", "candidate")}
    assert not (tmp_path / "out").exists()


def test_each_sequential_case_is_decided_once_where_it_stops() -> None:
    """drive() judges an open case at every look and a stopped one never again; its stop is the one record of its
    decision, and on fully known scores it stops where the simulation runner (sequential.run) stops."""
    spec = MetricSpec("accuracy", "", kind="binary")
    model = [1.0] * 300
    base = [1.0] * 300
    metrics = [MetricScores(spec, model, base, 0.05)]
    config = GateConfig(0.025, 200, 1, 10)
    plan = Plan.make(300, 100, 0.025)
    judged: list[tuple[str, int]] = []
    advanced: list[int] = []

    def judge(case: str, index: int, seen: int) -> Look:
        judged.append((case, index))
        if case == "slow":
            return Look(index + 1, seen, plan.levels[index], None, index == len(plan.looks) - 1, None)
        from clue.statistics.sequential import look

        upto = advanced[-1]
        prefix = [MetricScores(m.spec, m.model[:upto], m.base[:upto], m.margin) for m in metrics]
        return look(plan, index, prefix, config)

    stops = drive(plan, None, 300, ["fast", "slow"], advanced.append, judge)
    expected = run(metrics, config, 100)
    assert stops["fast"].look == expected.index and stops["fast"].boundary == expected.boundary == "non-inferior"
    assert [i for c, i in judged if c == "fast"] == list(range(expected.index))  # never judged after its stop
    assert [i for c, i in judged if c == "slow"] == [0, 1, 2] and stops["slow"].look == 3
    assert advanced == [100, 200, 300]


def _class_lengths() -> dict[str, int]:
    out = {}
    for file in (REPO / "clue").rglob("*.py"):
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                out[f"{file.relative_to(REPO)}:{node.name}"] = (node.end_lineno or node.lineno) - node.lineno + 1
    return out


def test_no_class_is_the_whole_engine() -> None:
    """Before: ClueSession held case expansion, data, generation, the sequential loop, baselines, scoring and
    provenance in 560 lines."""
    lengths = _class_lengths()
    assert "clue/run/session.py:ClueSession" in lengths
    too_long = {name: n for name, n in lengths.items() if n > 250}
    assert not too_long, too_long


@dataclass(frozen=True)
class ClinicOptions:
    endpoint: str = ""
    shards: int = 1

    def problem(self) -> str | None:
        return None if self.shards > 0 else "shards must be positive"


class ClinicServerBackend:
    """A third-party engine with keys of its own (only what the registry and the matrix reader look at)."""

    Options = ClinicOptions

    def generate(self, *args: object, **kwargs: object) -> list[object]:
        return []

    def fingerprint(self, store: object) -> dict[str, object]:
        return {}

    def token_counter(self) -> None:
        return None

    def describe(self) -> dict[str, object]:
        return {}

    def close(self) -> None:
        return None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("shards = 'two'\n", "model 'x': shards must be an integer"),
        ("shards = 0\n", "model 'x': shards must be positive"),
        ("replicas = 2\n", "model 'x': unknown key.s. replicas; backend 'clinic' takes endpoint, shards beyond"),
        ("tensor_parallel_size = 2\n", 'tensor_parallel_size is only used with backend = "vllm"'),
    ],
)
def test_a_third_party_backend_takes_options_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: str, message: str
) -> None:
    """Before: ModelSpec was one flat table of clue's engines' keys, so an installed backend's own key was an
    "unknown key" whatever the backend; now each backend's typed `Options` says what it takes."""
    from clue.backends.registry import BACKENDS
    from clue.models.matrix import backend_options, load_matrix

    monkeypatch.setattr(BACKENDS, "installed", lambda: {"clinic": "tests.test_run_parts:ClinicServerBackend"})
    matrix = tmp_path / "m.toml"
    matrix.write_text('[models.x]\npath = "org/x"\nbackend = "clinic"\nendpoint = "https://h"\nshards = 3\n')
    spec = load_matrix(matrix)["x"]
    assert spec.options == (("endpoint", "https://h"), ("shards", 3))
    assert backend_options(spec, ClinicOptions) == ClinicOptions("https://h", 3)
    matrix.write_text('[models.x]\npath = "org/x"\nbackend = "clinic"\n' + extra)
    with pytest.raises(ConfigError, match=message) as info:
        load_matrix(matrix)
    assert str(matrix) in str(info.value)


def test_a_task_lists_its_metrics_without_a_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: Task.metrics needed a run's Scorers even to list names, and metric_names() (which validates
    per-metric margins) built one and fingerprinted the BERTScore and UMLS models for it."""
    from clue.metrics.scorers import Scorers
    from clue.tasks import get_task, metric_names, task_names

    def refuse(self: Scorers) -> dict[str, str]:
        raise AssertionError("a metric model was looked at")

    monkeypatch.setattr(Scorers, "bertscore_fingerprint", refuse)
    monkeypatch.setattr(Scorers, "umls_fingerprint", refuse)
    text = {"rouge1", "rouge2", "rougeL", "bertscore_f1", "bertscore_precision", "bertscore_recall"}
    assert {m.name for m in get_task("meqsum").metrics()} == text
    assert {m.name for m in get_task("medisumqa").metrics()} >= text | {"umls_f1"}
    assert all(get_task(name).metrics() for name in task_names())
    assert {"accuracy", "bertscore_f1", "umls_f1", "icd_exact_f1"} <= metric_names()


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


def test_run_statistics_are_a_typed_record_that_merges_and_round_trips() -> None:
    """Worker statistics cross the xdist wire as JSON and are merged on the controller: typed on both sides, and a
    malformed part is refused by name rather than summed into nonsense."""
    from clue.records import RecordError, RunStats

    one = RunStats({"a": 1}, {"a": 3}, {"a": 7}, 1.5, 0.5, contamination_s=0.5, contamination_task_s={"t": 0.5})
    two = RunStats(
        {"a": 1, "b": 1}, {}, {"b": 2}, 2.0, 1.0, contamination_s=1.0, contamination_task_s={"t": 0.25, "u": 0.75}
    )
    merged = RunStats.merged([one, two], wall_s=9.0, workers=2)
    assert merged == RunStats(
        {"a": 2, "b": 1}, {"a": 3}, {"a": 7, "b": 2}, 3.5, 1.5, 2, 9.0, 1.5, {"t": 0.75, "u": 0.75}
    )
    assert RunStats.from_json(merged.to_json(), "here") == merged
    malformed: list[object] = [
        {"loads": {"a": "1"}}, {"loads": []}, {"backend_s": "slow"}, {"workers": True}, [1],
        {"contamination_task_s": {"t": "1 s"}}, {"contamination_task_s": {"t": True}}, {"contamination_task_s": [1.0]},
    ]  # fmt: skip
    for broken in malformed:
        with pytest.raises(RecordError, match=r"^gw0"):
            RunStats.from_json(broken, "gw0")


def test_the_time_line_names_each_task_s_contamination_probes_largest_first() -> None:
    """The diagnostic's cost per task is said on every run (README: its cost), not only in clue-session.json."""
    from clue.plugin import _time_line
    from clue.records import RunStats

    probes = RunStats(
        backend_s=80.0, scoring_s=5.0, wall_s=100.0, contamination_s=30.0,
        contamination_task_s={"meqsum": 6.0, "longhealth": 24.0},
    )  # fmt: skip
    assert _time_line(probes) == (
        "time: 100.0 s in this session, 80.0 s in model backends (30.0 s of it contamination probes: "
        "longhealth 24.0 s, meqsum 6.0 s), 5.0 s scoring"
    )
    plain = RunStats(backend_s=8.0, scoring_s=1.0, workers=2, wall_s=10.0)
    assert _time_line(plain) == (
        "time: 10.0 s in this session, 8.0 s in model backends, 1.0 s scoring "
        "(2 workers; backend and scoring times summed over them)"
    )


@given(
    key=st.sampled_from(["backend_s", "scoring_s", "wall_s", "contamination_s", "contamination_task_s"]),
    value=hostile_values | st.floats() | st.dictionaries(st.text(max_size=8), hostile_values | st.floats(), max_size=3),
)
@settings(max_examples=300, deadline=None)
def test_run_statistics_from_any_json_are_read_finite_or_refused_by_name(key: str, value: object) -> None:
    """clue-session.json and an xdist worker's message are read back: a NaN, a negative or an infinite duration, or
    a value of another type, is refused naming the field, never summed into the time line."""
    from clue.records import RunStats

    try:
        read = RunStats.from_json({key: value}, "gw3")
    except RecordError as exc:
        assert str(exc).startswith(f"gw3, {key}: not a ")
        return
    seconds = [read.backend_s, read.scoring_s, read.wall_s, read.contamination_s, *read.contamination_task_s.values()]
    assert all(math.isfinite(s) and s >= 0 for s in seconds)
