"""Results files under hypothesis' mutations, rendered again by `python -m clue.report`: rendered or refused by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers.hostile import bytes_mutation, json_mutation
from tests.helpers.hostile_files import HOSTILE, refused_or_read


@pytest.fixture(scope="module")
def results_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clue-results.json of recorded cases (MedNLI, MeDiSumCode, MeQSum), through the real records code."""
    from tests.helpers.report_data import recorded_results

    path = tmp_path_factory.mktemp("results") / "clue-results.json"
    path.write_text(json.dumps({"schema": 1, "results": recorded_results(), "not_run": [], "strict": False}))
    return path


@HOSTILE
@given(data=st.data())
def test_results_files_rerendered(results_file: Path, data: st.DataObject, tmp_path: Path) -> None:
    """`python -m clue.report` on a damaged or edited clue-results.json: the report, or one line naming the file."""
    from clue.report.__main__ import main

    path = tmp_path / "clue-results.json"
    if data.draw(st.booleans()):
        path.write_text(data.draw(json_mutation(json.loads(results_file.read_text()))), encoding="utf-8")
    else:
        path.write_bytes(data.draw(bytes_mutation(results_file.read_bytes())))
    refused_or_read(lambda p: main([str(p), "--out", str(tmp_path / "out")]), path)
