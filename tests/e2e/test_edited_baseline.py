"""An edited stored baseline is refused naming the file and the entry, and stops the run before any test."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clue import baseline
from clue.errors import ConfigError
from clue.records import BaselineEntry, BaselineSample
from tests.helpers.hostile import bytes_mutation, json_mutation
from tests.helpers.hostile_files import HOSTILE, refused_or_read
from tests.helpers.replay_project import run


def _edited(tmp_path: Path, edit: Callable[[Any], object]) -> Path:
    saved = baseline.write(tmp_path / "b.json", [baseline_entry()])
    document = json.loads(saved.read_text())
    edit(document["entries"][0])
    saved.write_text(json.dumps(document, indent=1))
    return saved


def _recompute(entry: dict[str, object]) -> dict[str, object]:
    entry["digest"] = baseline.digest(entry)
    return entry


def test_an_edited_baseline_is_refused_naming_the_file_and_entry(tmp_path: Path) -> None:
    """Before: every score set to 1.0 was taken as measured (the candidate was REGRESSED on numbers nobody
    measured); a copy of a sample with other scores was used; NaN and an accuracy of 7 failed deep in stats.py."""

    def all_perfect(entry: Any) -> Any:
        for sample in entry["samples"]:
            sample["scores"] = {k: 1.0 for k in sample["scores"]}
        return entry

    def appended_copy(entry: Any) -> Any:
        entry["samples"].append({**entry["samples"][0], "scores": {"accuracy": 0.0, "rougeL": 0.0}})
        return entry

    digest = r"b.json, entry 0 \(mednli/base\): its content does not match the digest written when it was saved"
    for edit in (all_perfect, appended_copy, lambda e: e["samples"].pop()):
        with pytest.raises(ConfigError, match=digest):
            baseline.load(_edited(tmp_path, edit))
    # whoever recomputes the digest gets past it (README), but not past the checks of what a score can be
    with pytest.raises(ConfigError, match=r"b.json, entry 0 \(mednli/base\), sample 0+: listed twice"):
        baseline.load(_edited(tmp_path, lambda e: (appended_copy(e), e.update(n=9), _recompute(e))))
    seven = _edited(tmp_path, lambda e: (e["samples"][1]["scores"].update(accuracy=7), _recompute(e)))
    with pytest.raises(ConfigError, match=r"sample 0+1, metric accuracy: the score is not 0 or 1"):
        baseline.load(seven)
    over = _edited(tmp_path, lambda e: (e["samples"][1]["scores"].update(rougeL=1.5), _recompute(e)))
    with pytest.raises(ConfigError, match=r"metric rougeL: the score is outside this metric's range \[0, 1\]"):
        baseline.load(over)
    nan = baseline.write(tmp_path / "b.json", [baseline_entry()])
    nan.write_text(nan.read_text().replace('"rougeL": 0.125', '"rougeL": NaN', 1))
    with pytest.raises(ConfigError, match=r"baseline .*b.json: NaN is not a number JSON allows"):
        baseline.load(nan)


def test_an_edited_baseline_stops_the_run_before_any_test(answered: pytest.Pytester) -> None:
    run(answered, "-k", "mednli", "--clue-save-baseline", "b.json").assert_outcomes(passed=2)
    saved = answered.path / "b.json"
    saved.write_text(saved.read_text().replace('"accuracy": 1.0', '"accuracy": 0.0', 5))
    result = run(answered, "-k", "mednli", "--clue-baseline", "b.json#base")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*b.json, entry * (mednli/base): its content does not match the digest*"])


def baseline_entry() -> BaselineEntry:
    metric = {"higher_is_better": True, "fingerprint": {"definition": "x"}}
    return BaselineEntry(
        task="mednli",
        model="base",
        protocol={"version": 2, "n_shots": 3, "few_shot_ids": ["a1", "b2", "c3"]},
        data={"sha256": "ab" * 32, "records": 10},
        decoding={"temperature": 0.0, "top_p": 1.0, "seed": 1},
        metrics={
            "accuracy": {**metric, "kind": "binary", "bounds": None},
            "rougeL": {**metric, "kind": "continuous", "bounds": [0.0, 1.0]},
        },
        samples=tuple(
            BaselineSample(f"{i:016x}", {"accuracy": float(i % 2), "rougeL": i / 8}, f"p{i}", f"o{i}", None)
            for i in range(8)
        ),
        clue="0.1.0",
        n=8,
    )


@HOSTILE
@given(data=st.data())
def test_baseline_files(data: st.DataObject, tmp_path: Path) -> None:
    """A mutated baseline is refused naming the file, or it reads as the very entry that was saved: an edit is
    never taken as a measurement."""
    saved = baseline.write(tmp_path / "saved.json", [baseline_entry()])
    path = tmp_path / "b.json"
    if data.draw(st.booleans()):
        path.write_text(data.draw(json_mutation(json.loads(saved.read_text()))), encoding="utf-8")
    else:
        path.write_bytes(data.draw(bytes_mutation(saved.read_bytes())))
    loaded = refused_or_read(baseline.load, path)
    if loaded is not None:
        assert dict(loaded.entries) == {("mednli", "base"): baseline_entry()}
