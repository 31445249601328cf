"""MLflow tracking (clue/report/tracking.py) against real tracking stores: a SQLite store, and `mlflow server`
started here on a loopback port. Every case of a recorded run becomes a nested run carrying its metrics (both
models', the difference, its interval, the p-values) and its verdict; a store that is down is one error after the
reports, never a changed verdict. The privacy scan of a real plugin run's MLflow store is in
tests/e2e/test_privacy.py."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clue.records import RunRecord
from clue.report.tracking import Tracker, case_metrics, key, shown_uri
from tests.helpers.report_data import recorded_results, run_of

mlflow = pytest.importorskip("mlflow")  # installed by .ci/run ([mlflow] extra); CI fails when it is missing

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A SQLite store puts artefacts in ./mlruns (MLflow's default root): never in the checkout."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def recorded() -> RunRecord:
    return run_of(recorded_results())


def _runs(uri: str, experiment: str) -> tuple[Any, list[Any]]:
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    return parents[0], children


def _check_store(uri: str, experiment: str, record: RunRecord) -> None:
    parent, children = _runs(uri, experiment)
    assert parent.info.status == "FINISHED" and parent.data.params["gate.margin"] == "0.02"
    assert {c.info.run_name for c in children} == {f"{r.task}/{r.case}" for r in record.results}
    for case in record.results:
        child = next(c for c in children if c.info.run_name == f"{case.task}/{case.case}")
        assert child.data.tags["clue.verdict"] == case.verdict
        assert child.data.params["task"] == case.task and child.data.params["n"] == str(case.n)
        for name, entry in case.metrics.items():
            assert child.data.metrics[name] == pytest.approx(entry.value)
            if entry.comparison is not None:
                assert child.data.metrics[f"{name}.difference"] == pytest.approx(entry.comparison.delta)
                assert child.data.metrics[f"{name}.p_regression"] == pytest.approx(entry.comparison.p_regression)
                assert child.data.metrics[f"{name}.base"] == pytest.approx(entry.comparison.base_mean)


@pytest.mark.parametrize("store", ["sqlite", "folder", "file-uri"])
def test_every_case_is_a_nested_run_with_its_metrics_and_verdict_in_a_tracking_store(
    recorded: RunRecord, tmp_path: Path, store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SQLite store, and a folder as a path or a file: URI (MLflow 3 refuses a file store without
    MLFLOW_ALLOW_FILE_STORE: a folder named as the store is taken as meant)."""
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    uri = {"sqlite": f"sqlite:///{tmp_path / 'mlflow.db'}", "folder": str(tmp_path / "runs")}.get(
        store, (tmp_path / "runs").as_uri()
    )
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "summary.md").write_text("# clue\n")
    tracked = Tracker(uri, "release-1.3").log(recorded, {"gate.margin": "0.02"}, [reports / "summary.md"], {})
    assert tracked.cases == len(recorded.results) == 6  # three gated cases and their bases
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # this test's own reading of the store
    _check_store(uri, "release-1.3", recorded)
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    assert [a.path for a in client.list_artifacts(tracked.parent_run_id)] == ["summary.md"]
    again = Tracker(uri, "release-1.3").log(recorded, {}, [], {})  # a second session: a second parent run
    assert again.parent_run_id != tracked.parent_run_id


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow server` on a loopback port, with a SQLite backend and a local artefact root."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    exe = shutil.which("mlflow") or f"{sys.executable} -m mlflow"
    command = [*exe.split(), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
               "--backend-store-uri", f"sqlite:///{root / 'db.sqlite'}",
               "--artifacts-destination", str(root / "artifacts")]  # fmt: skip
    server = subprocess.Popen(command, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert server.poll() is None, "mlflow server exited"
                time.sleep(0.5)
        else:
            pytest.fail("mlflow server did not start in 90 s")
        yield url
    finally:
        server.terminate()
        server.wait(30)


def test_a_tracking_server_on_a_loopback_port_receives_the_run(
    recorded: RunRecord, mlflow_server: str, tmp_path: Path
) -> None:
    results = tmp_path / "case.json"
    first = recorded.results[0]
    results.write_text(json.dumps(first.to_json()))
    files = {f"{first.task}/{first.case}": results}
    Tracker(mlflow_server, "served").log(recorded, {"gate.margin": "0.02"}, [], files)
    _check_store(mlflow_server, "served", recorded)
    _, children = _runs(mlflow_server, "served")
    child = next(c for c in children if c.info.run_name == f"{first.task}/{first.case}")
    client = mlflow.tracking.MlflowClient(tracking_uri=mlflow_server)
    assert [a.path for a in client.list_artifacts(child.info.run_id)] == ["case.json"]


def test_a_store_that_is_down_is_one_error_after_the_reports_and_the_verdicts_stand(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.helpers.replay_project import mednli_records, run

    (pytester.path / "data" / "mednli").mkdir(parents=True)
    (pytester.path / "data" / "mednli" / "mli_test_v1.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in mednli_records())
    )
    from tests.helpers import REPO, write_replay_matrix

    rows = [{"task": "mednli", "sample_id": r["pairID"], "text": r["gold_label"]} for r in mednli_records()]
    write_replay_matrix(pytester.path, {"base": rows, "candidate": rows})
    pytester.makepyfile(test_mednli=(REPO / "benchmarks" / "test_mednli.py").read_text())
    pytester.makeini("[pytest]\n")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    down = f"http://127.0.0.1:{_free_port()}"
    began = time.monotonic()
    result = run(pytester, "--clue-mlflow", down)
    assert time.monotonic() - began < 120
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # the verdicts passed; the tracking did not happen
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([f"*clue: reports not written (the verdicts above stand): MLflow tracking at {down}*"])
    assert (pytester.path / "out" / "clue-results.json").is_file() and (pytester.path / "out" / "index.html").is_file()


def test_a_password_in_the_uri_is_refused_and_never_shown(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    result = pytester.runpytest("--clue-mlflow", "https://alice:s3cret@mlflow.hospital.example")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "MLFLOW_TRACKING_PASSWORD" in result.stderr.str() and "s3cret" not in result.stderr.str()
    assert shown_uri("https://alice@mlflow.example/x") == "https://***@mlflow.example/x"


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=300))
def test_any_metric_name_becomes_a_key_mlflow_accepts(name: str) -> None:
    from mlflow.utils import validation

    check: Any = validation  # MLflow's own validators (private, untyped): what the store applies to every key
    check._validate_metric_name(key(name))
    check._validate_param_name(key(name))


def test_metrics_are_finite_numbers_only(recorded: RunRecord) -> None:
    for case in recorded.results:
        values = case_metrics(case)
        assert values and all(v == v and abs(v) != float("inf") for v in values.values())


def _replay_project(tmp_path: Path) -> dict[str, Any]:
    from tests.helpers import write_replay_matrix
    from tests.helpers.replay_project import mednli_records

    (tmp_path / "data" / "mednli").mkdir(parents=True)
    (tmp_path / "data" / "mednli" / "mli_test_v1.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in mednli_records())
    )
    rows = [{"task": "mednli", "sample_id": r["pairID"], "text": r["gold_label"]} for r in mednli_records()]
    write_replay_matrix(tmp_path, {"base": rows, "candidate": rows})
    return {
        "root": tmp_path,
        "matrix": str(tmp_path / "models.toml"),
        "data_dir": str(tmp_path / "data"),
        "cache_dir": str(tmp_path / "cache"),
        "reports_dir": str(tmp_path / "reports"),
    }


@pytest.mark.parametrize("samples", [False, True])
def test_evaluate_logs_the_artefacts_of_a_default_run_and_none_when_samples_are_in_the_reports(
    tmp_path: Path, samples: bool
) -> None:
    """--clue-report-samples puts raw MedNLI text into the reports: then the tracking store gets the numbers and
    the verdicts, and no file at all."""
    import clue

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run = clue.evaluate(["mednli"], write_reports=True, report_samples=samples, mlflow=uri, **_replay_project(tmp_path))
    assert run.tracked is not None and "2 cases logged" in run.tracked and not run.unwritten
    parent, children = _runs(uri, "clue")
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    logged = [a.path for r in [parent, *children] for a in client.list_artifacts(r.info.run_id)]
    if samples:
        assert logged == []
    else:
        assert {"clue-results.json", "index.html", "summary.md", "candidate.json", "base.json"} <= set(logged)
    child = next(c for c in children if c.info.run_name == "mednli/candidate")
    assert child.data.tags["clue.verdict"] in ("not_worse", "inconclusive", "improved")
    assert child.data.params["data_use"] == "in-process engine" and len(child.data.params["data_sha256"]) == 64
