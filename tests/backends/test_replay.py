"""The replay backend's files: ambiguous records and unknown tasks are refused; problems are usage errors and stray
records a warning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clue.backends.replay import read_outputs
from clue.errors import ConfigError, DataError
from tests.helpers import write_replay_matrix
from tests.helpers.hostile import bytes_mutation, jsonl_mutation
from tests.helpers.hostile_files import HOSTILE, json_records, refused_or_read
from tests.helpers.replay_project import answers, code_answers, run


def test_replay_files_refuse_ambiguous_records_and_unknown_tasks(tmp_path: Path) -> None:
    """Before: a sample recorded twice with different texts was scored with the last one, and a task written
    `MedNLI` was ignored without a word."""
    path = tmp_path / "outputs.jsonl"
    rows = [
        {"task": "mednli", "sample_id": "a1", "text": "NEUTRAL"},
        {"task": "mednli", "sample_id": "a1", "text": "X"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match=r"outputs.jsonl, record line 2: the sample \(hashed [0-9a-f]{16}\) of mednli"):
        read_outputs(path)
    path.write_text(json.dumps({"task": "mednli", "sample_id": "a1", "text": "N"}) * 1 + "\n" * 2)
    assert read_outputs(path) == {("mednli", "a1", "reference"): "N"}
    path.write_text(json.dumps({"task": "MedNLI", "sample_id": "a1", "text": "N"}) + "\n")
    with pytest.raises(ConfigError, match=r"line 1: no task 'MedNLI' \(did you mean mednli\?\); tasks: mednli, "):
        read_outputs(path)


@given(wording=st.one_of(st.integers(), st.none(), st.just(""), st.just("  "), st.lists(st.text(), max_size=2)))
def test_a_wording_that_is_no_name_is_refused_by_line(
    tmp_path_factory: pytest.TempPathFactory, wording: object
) -> None:
    """A record's `wording` names the instruction it was generated under (issue 44): a value that is not a
    non-empty string is refused naming the line and the field; the same sample under two wordings is two records."""
    path = tmp_path_factory.mktemp("replay") / "outputs.jsonl"
    rows = [
        {"task": "mednli", "sample_id": "a1", "text": "NEUTRAL"},
        {"task": "mednli", "sample_id": "a1", "text": "ENTAILMENT", "wording": "clue-1"},
        {"task": "mednli", "sample_id": "a1", "text": "X", "wording": wording},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match=r"record line 3, field 'wording': expected a wording's id or hash"):
        read_outputs(path)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows[:2]))
    assert read_outputs(path) == {("mednli", "a1", "reference"): "NEUTRAL", ("mednli", "a1", "clue-1"): "ENTAILMENT"}


def test_replay_problems_are_usage_errors_and_stray_records_a_warning(answered: pytest.Pytester) -> None:
    rows = answers(set()) + code_answers()
    write_replay_matrix(answered.path, {"base": rows, "candidate": [*rows, {**rows[0], "task": "MedNLI"}]})
    result = run(answered, "-k", "mednli")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*model 'candidate': *candidate.jsonl*: no task 'MedNLI' (did you mean mednli?)*"])
    stray = [*rows, {"task": "mednli", "sample_id": "no-such-pair", "text": "NEUTRAL"}]
    write_replay_matrix(answered.path, {"base": rows, "candidate": stray})
    result = run(answered, "-k", "mednli")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*candidate.jsonl: 1 record(s) of mednli match no sample of its data (hashed ids *"])


REPLAY = [
    {"task": "mednli", "sample_id": r["pairID"], "text": f"The relation is {r['gold_label'].upper()}"}
    for r in json_records("mednli")[:8]
]


@HOSTILE
@given(data=st.data())
def test_replay_files(data: st.DataObject, tmp_path: Path) -> None:
    from clue.backends.replay import read_outputs

    path = tmp_path / "outputs.jsonl"
    if data.draw(st.booleans()):
        path.write_text(data.draw(jsonl_mutation(REPLAY)), encoding="utf-8")
    else:
        path.write_bytes(data.draw(bytes_mutation("".join(json.dumps(r) + "\n" for r in REPLAY).encode())))
    outputs = refused_or_read(read_outputs, path)
    if outputs is not None:  # every record read is one of the file's, once
        assert all(isinstance(text, str) for text in outputs.values())
