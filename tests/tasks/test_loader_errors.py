"""Loaders that used to crash or guess: LongHealth names its file for all three sub-tasks and refuses what it cannot
read, a damaged MeQSum workbook is one data error, an oversized document is refused at load with its size."""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from pathlib import Path

import pytest

from clue.config import data_files
from clue.errors import ConfigError, DataError
from clue.tasks import get_task
from tests.helpers import FIXTURE_DATA
from tests.store.test_store_errors import _clue


def test_longhealth_names_the_file_of_all_three_sub_tasks(tmp_path: Path) -> None:
    """Before: --clue-data longhealth=FILE matched nothing (the tasks are longhealth_task1..3) and was ignored."""
    files = data_files(["longhealth=lh.json"], tmp_path, "--clue-data")
    assert files == {f"longhealth_task{i}": tmp_path / "lh.json" for i in (1, 2, 3)}
    with pytest.raises(ConfigError, match="task longhealth_task2 is given two files"):
        data_files(["longhealth=lh.json", "longhealth_task2=other.json"], tmp_path, "--clue-data")
    shutil.copy(FIXTURE_DATA / "longhealth/benchmark_v5.json", tmp_path / "lh.json")
    (tmp_path / "empty").mkdir()
    done = _clue("data", "check", "empty", "--data", "longhealth=lh.json", cwd=tmp_path)
    assert done.returncode == 0 and re.search(r"found +LongHealth .*lh\.json", done.stdout), done.stdout + done.stderr


def _longhealth(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "benchmark_v5.json"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def test_longhealth_refuses_what_it_used_to_crash_on_or_guess(tmp_path: Path) -> None:
    """Before: a non-UTF-8 byte gave a bare UnicodeDecodeError, a question that is a string an AttributeError, and a
    patient given twice was accepted (the last copy won)."""
    good = (FIXTURE_DATA / "longhealth/benchmark_v5.json").read_text()
    task = get_task("longhealth_task1")
    with pytest.raises(DataError, match=r"benchmark_v5.json: not UTF-8 text \(byte 1: invalid start byte\)"):
        task.load(_longhealth(tmp_path, b"{\xff" + good.encode()[1:]))
    data = json.loads(good)
    first = next(iter(data))
    data[first]["questions"][0] = "Which complication occurred?"
    with pytest.raises(DataError, match=rf"patient {first}, question 0: expected an object, got a string of 28"):
        task.load(_longhealth(tmp_path, json.dumps(data)))
    twice = good.replace(f'"{first}":', f'"{first}": {json.dumps(json.loads(good)[first])}, "{first}":', 1)
    with pytest.raises(DataError, match=f"an object holds the key '{first}' twice"):
        task.load(_longhealth(tmp_path, twice))


def test_a_damaged_meqsum_workbook_is_one_data_error(tmp_path: Path) -> None:
    """Before: broken sheet XML inside a sound zip gave an ExpatError traceback."""
    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(["File", "CHQ", "Summary"])
    book.active.append(["1", "question", "summary"])
    good = tmp_path / "good.xlsx"
    book.save(good)
    bad = tmp_path / "MeQSum_ACL2019_BenAbacha_Demner-Fushman.xlsx"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as dst:
        for item in src.infolist():
            payload = src.read(item.filename)
            dst.writestr(item, payload[: len(payload) // 2] if item.filename.endswith("sheet1.xml") else payload)
    with pytest.raises(DataError, match=r"MeQSum_ACL2019_BenAbacha_Demner-Fushman.xlsx: not a readable .xlsx workbook"):
        get_task("meqsum").load(bad)


def test_an_oversized_document_is_refused_at_load_with_its_size(tmp_path: Path) -> None:
    """Before: a 50 MB document was tokenised whole, 4 min 19 s and 11.6 GB for 4 prompts, with no warning
    (studies/oversize_input.py measures the refusal's time and memory)."""
    records = json.loads((FIXTURE_DATA / "medisumcode/MeDiSumCode.json").read_text())
    records[3]["text"] = "Pt. stable. " * 200_000
    path = tmp_path / "MeDiSumCode.json"
    path.write_text(json.dumps(records))
    with pytest.raises(DataError, match=r"index 3, field 'text': a string of 2,400,000 characters, over the limit"):
        get_task("medisumcode").load(path)
