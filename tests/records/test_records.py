"""The typed records that leave a run (clue/records/): they round-trip, and a malformed file, baseline entry or
run-statistics record is refused by name, never read as something else."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clue.records import BaselineEntry, CaseRecord, RecordError, RunRecord
from tests.helpers import REPO
from tests.helpers.hostile import hostile_values
from tests.helpers.replay_project import make_project, write_models
from tests.helpers.report_data import recorded_results

pytest_plugins = ["pytester"]


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
