"""Every task loader under hypothesis' mutations of its fixture file (tests/helpers/hostile.py): bytes flipped,
files cut short, keys and records given twice, values of another type, huge values. Each mutation is read
correctly or refused with one ClueError that names the file and echoes neither the planted canary nor a raw id."""

from __future__ import annotations

import functools
import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clue.tasks import get_task
from tests.helpers.hostile import CANARY, bytes_mutation, csv_mutation, json_mutation, jsonl_mutation
from tests.helpers.hostile_files import FILES, HOSTILE, json_records, refused_or_read


def check_samples(task: str, path: Path) -> None:
    samples = refused_or_read(get_task(task).load, path)
    if samples is not None:  # a mutation that kept the file valid: the result is well formed
        assert len({s.id for s in samples}) == len(samples)
        assert all(len(v) <= 1_000_000 for s in samples for v in s.fields.values() if isinstance(v, str))


@pytest.mark.parametrize("task", ["medisumcode", "medisumqa", "longhealth_task1"])
@HOSTILE
@given(data=st.data())
def test_json_data_files(task: str, data: st.DataObject, tmp_path: Path) -> None:
    path = tmp_path / FILES[task].name
    path.write_text(data.draw(json_mutation(json.loads(FILES[task].read_text()))), encoding="utf-8")
    check_samples(task, path)


@HOSTILE
@given(data=st.data())
def test_json_lines_data_files(data: st.DataObject, tmp_path: Path) -> None:
    path = tmp_path / FILES["mednli"].name
    path.write_text(data.draw(jsonl_mutation(json_records("mednli"))), encoding="utf-8")
    check_samples("mednli", path)


@HOSTILE
@given(data=st.data())
def test_csv_data_files(data: st.DataObject, tmp_path: Path) -> None:
    path = tmp_path / FILES["problem_summary"].name
    path.write_text(data.draw(csv_mutation(FILES["problem_summary"].read_text())), encoding="utf-8")
    check_samples("problem_summary", path)


@pytest.mark.parametrize("task", sorted(FILES))
@HOSTILE
@given(data=st.data())
def test_damaged_bytes_of_every_data_file(task: str, data: st.DataObject, tmp_path: Path) -> None:
    path = tmp_path / FILES[task].name
    path.write_bytes(data.draw(bytes_mutation(FILES[task].read_bytes())))
    check_samples(task, path)


@functools.cache
def meqsum_workbook(rows: tuple[tuple[Any, ...], ...]) -> bytes:
    """The workbook's bytes, once per content: openpyxl stamps the save time into the file, and hypothesis needs the
    same bytes when it replays an example."""
    import openpyxl

    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


MEQSUM_ROWS = [["File", "CHQ", "Summary"]] + [[f"q{i}", f"question {i} text", f"summary {i}?"] for i in range(6)]


@HOSTILE
@given(data=st.data())
def test_damaged_meqsum_workbooks(data: st.DataObject, tmp_path: Path) -> None:
    path = tmp_path / "MeQSum_ACL2019_BenAbacha_Demner-Fushman.xlsx"
    rows: list[list[str | int | None]] = [list(r) for r in MEQSUM_ROWS]
    r, c = data.draw(st.integers(0, len(rows) - 1)), data.draw(st.integers(0, 2))
    rows[r][c] = data.draw(st.sampled_from([None, 7, f"{CANARY} x", rows[r][c], CANARY * 100_000, "q1", "CHQ"]))
    workbook = meqsum_workbook(tuple(tuple(row) for row in rows))
    path.write_bytes(data.draw(bytes_mutation(workbook)) if data.draw(st.booleans()) else workbook)
    check_samples("meqsum", path)
