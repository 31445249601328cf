"""`clue.evaluate` (the README's notebook example, run literally) gives the numbers and verdicts of a pytest run of
the same tasks on the embedded default."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import clue
from clue.errors import ConfigError, ReportsWarning
from tests.helpers import REPO
from tests.helpers.replay_project import mednli_records, write_models


def readme_example() -> str:
    text = (REPO / "README.md").read_text()
    block = re.search(r"<!-- evaluate-example -->\n```python\n(.*?)```\n<!-- /evaluate-example -->", text, re.S)
    assert block is not None, "README: the evaluate example is gone"
    return block.group(1)


def test_the_readme_example_gives_the_numbers_of_the_pytest_run(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks", "-q", "-p", "no:cacheprovider", "-k", "mednli or medisumcode",
         "--clue-limit", "6", "--clue-reports-dir", str(reports), "--junitxml", str(reports / "junit.xml")],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stdout[-2000:] + done.stderr[-2000:]
    expected = {(r["task"], r["case"]): r for r in json.loads((reports / "clue-results.json").read_text())["results"]}
    dump = "\nimport json\nprint('RECORDS', json.dumps([c.record.to_json() for c in run.results]))\n"
    done = subprocess.run([sys.executable, "-c", readme_example() + dump], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = done.stdout.splitlines()
    records = json.loads(next(line for line in printed if line.startswith("RECORDS ")).removeprefix("RECORDS "))
    assert {(r["task"], r["case"]) for r in records} == set(expected) and len(records) == 4
    for record in records:
        pytest_record = expected[(record["task"], record["case"])]
        assert record["verdict"] == pytest_record["verdict"]
        assert record["metrics"] == pytest_record["metrics"], record["task"]
        assert record["samples"] == pytest_record["samples"]
    primary = {(r["task"], r["case"]): r["metrics"][r["primary_metric"]]["value"] for r in records}
    for (task, case), value in primary.items():
        assert f"{task} {case} {expected[(task, case)]['verdict']} {round(value, 4)}" in printed


def test_evaluate_honours_save_baseline_reports_and_require_data(tmp_path: Path) -> None:
    """clue.evaluate once accepted save_baseline=, wrote no baseline and no clue-session.json, and skipped a
    task without data under require_data=True; it now does what --clue-save-baseline and --clue-require-data do."""
    import clue
    from clue import baseline

    class Project:  # write_models takes a pytester; it needs only .path
        path = tmp_path

    (tmp_path / "data" / "mednli").mkdir(parents=True)
    (tmp_path / "data" / "mednli" / "mli_test_v1.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in mednli_records())
    )
    write_models(Project(), base_wrong=set(), candidate_wrong=set())  # type: ignore[arg-type]
    common = {
        "root": tmp_path,
        "matrix": str(tmp_path / "models.toml"),
        "data_dir": str(tmp_path / "data"),
        "cache_dir": str(tmp_path / "cache"),
        "reports_dir": str(tmp_path / "reports"),
    }
    run = clue.evaluate(["mednli"], save_baseline=str(tmp_path / "bl.json"), write_reports=True, **common)
    assert run.saved_baseline == tmp_path / "bl.json"
    assert set(baseline.load(tmp_path / "bl.json").entries) == {("mednli", "base"), ("mednli", "candidate")}
    assert set(json.loads((tmp_path / "reports/clue-session.json").read_text())["loads"]) == {"base", "candidate"}
    (tmp_path / "blocked").write_text("a file where the reports folder belongs\n")
    with pytest.warns(ReportsWarning, match=r"reports not written: .*blocked.*"):
        blocked = clue.evaluate(["mednli"], write_reports=True, **{**common, "reports_dir": str(tmp_path / "blocked")})
    assert len(blocked.results) == 2 and blocked.unwritten and all("blocked" in u for u in blocked.unwritten)
    missing = clue.evaluate(["meqsum"], require_data=True, **common)
    assert [(r.task, r.status) for r in missing.not_run] == [("meqsum", "error"), ("meqsum", "error")]
    assert "require_data" in missing.not_run[0].reason


def test_evaluate_refuses_by_name_an_option_it_cannot_honour(tmp_path: Path) -> None:
    """Before: clue.evaluate(gpus="0,1") was accepted and ignored."""
    with pytest.raises(ConfigError, match=r"gpus= is not taken here: it splits GPUs among pytest-xdist workers"):
        clue.evaluate(["mednli"], root=tmp_path, gpus="0,1")
