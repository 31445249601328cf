"""The hostile-input suite: hypothesis mutates every fixture file, replay file, baseline file and matrix (bytes
flipped, files cut short, keys and records given twice, values of another type, huge values; tests/hostile.py) and
feeds each through clue's public readers. For every mutation the reader either returns a correct result or raises
one ClueError that names the file; never another exception (a traceback from clue's code), and never a message that
holds the canary planted in the mutated records or a raw id of a credentialed fixture.

The same mutations of the credentialed data then go through whole runs of the plugin, and every file the run wrote
is scanned for the canary and the fixtures' raw ids (tests/test_edges.py holds one test per class of problem)."""

from __future__ import annotations

import csv
import functools
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clue import baseline
from clue.errors import ClueError
from clue.models.matrix import load_matrix
from clue.records import BaselineEntry, BaselineSample
from clue.tasks import get_task
from tests.conftest import FIXTURE_DATA, REPO
from tests.hostile import CANARY, bytes_mutation, csv_mutation, json_mutation, jsonl_mutation, names

pytest_plugins = ["pytester"]

FILES = {
    "mednli": FIXTURE_DATA / "mednli/mli_test_v1.jsonl",
    "medisumcode": FIXTURE_DATA / "medisumcode/MeDiSumCode.json",
    "medisumqa": FIXTURE_DATA / "medisumqa/MeDiSumQA.json",
    "problem_summary": FIXTURE_DATA / "problem_summary/BioNLP2023-1A-Test.csv",
    "longhealth_task1": FIXTURE_DATA / "longhealth/benchmark_v5.json",
}
CREDENTIALED = ("mednli", "medisumcode", "medisumqa", "problem_summary")
# fixed examples, derandomised: the suite is the same on every run and CI machine
HOSTILE = settings(
    max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def raw_ids() -> set[str]:
    """The credentialed fixtures' raw sample ids (and MeDiSumQA's note ids and questions) of 5+ characters."""
    ids: set[str] = set()
    for name in CREDENTIALED:
        for sample in get_task(name).load(FILES[name]):
            ids.update(part for part in (sample.id, *sample.id.split("/", 1)) if len(part) >= 5)
    return ids


RAW_IDS = raw_ids()


def refused_or_read(read: Callable[[Path], Any], path: Path, *, quotes_values: bool = False) -> Any:
    """`read(path)`'s result, or None when it raised a ClueError that names the file and echoes nothing planted.
    `quotes_values`: a file without patient data (the model matrix), whose messages quote a wrong value."""
    try:
        return read(path)
    except ClueError as exc:
        message = str(exc)
        assert path.name in message, message
        assert quotes_values or CANARY not in message, message
        assert not [i for i in RAW_IDS if names(message, i)], message
        return None


def check_samples(task: str, path: Path) -> None:
    samples = refused_or_read(get_task(task).load, path)
    if samples is not None:  # a mutation that kept the file valid: the result is well formed
        assert len({s.id for s in samples}) == len(samples)
        assert all(len(v) <= 1_000_000 for s in samples for v in s.fields.values() if isinstance(v, str))


def json_records(task: str) -> list[Any]:
    text = FILES[task].read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()] if text.startswith("{") else []


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


MATRIX = (REPO / "fixtures" / "models.toml").read_text()


@HOSTILE
@given(data=st.data())
def test_matrix_files(data: st.DataObject, tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    lines = MATRIX.splitlines()
    index = data.draw(st.integers(0, len(lines) - 1))
    kind = data.draw(st.sampled_from(["bytes", "repeat_line", "value"]))
    if kind == "repeat_line":
        lines.insert(index, lines[index])
    elif kind == "value" and "=" in lines[index]:
        key = lines[index].split("=", 1)[0]
        lines[index] = f"{key}= {data.draw(st.sampled_from(['1', 'true', '[1, 2]', '{a = 1}', repr(CANARY), '-1']))}"
    text = "\n".join(lines).encode()
    path.write_bytes(data.draw(bytes_mutation(text)) if kind == "bytes" else text)
    refused_or_read(load_matrix, path, quotes_values=True)  # "dtype 'bf16' is not one of ...": the typo shown


@pytest.fixture(scope="module")
def results_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clue-results.json of recorded cases (MedNLI, MeDiSumCode, MeQSum), through the real records code."""
    from tests.report_data import recorded_results

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


@HOSTILE
@given(data=st.data())
def test_a_contamination_reference_file_is_read_or_refused_by_name(data: st.DataObject, tmp_path: Path) -> None:
    """--clue-contamination-reference reads a file in the task's own format: a mutated one gives its items that
    are not test items, or a DataError naming the file that echoes nothing planted (the diagnostic's reason,
    written into the results)."""
    from clue.config import DataOptions, GateOptions, Settings
    from clue.run.catalog import DataCatalog

    reference = tmp_path / "unseen.csv"
    rows = list(csv.reader(io.StringIO(FILES["problem_summary"].read_text())))
    rows[1:] = [[f"9{r[0]}", *r[1:-1], f"{r[-1]} stable"] for r in rows[1:11]] + rows[11:]  # 10 unseen, the rest not
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    reference.write_text(data.draw(csv_mutation(text.getvalue())), encoding="utf-8")
    settings = Settings(
        REPO,
        data=DataOptions(data={"problem_summary": FILES["problem_summary"]}),
        gate=GateOptions(contamination_reference={"problem_summary": reference}),
    )
    catalog = DataCatalog(settings)
    task = catalog.task("problem_summary")
    test_data = catalog.data(task)
    assert test_data is not None
    items = refused_or_read(lambda _: catalog.reference_items(task, test_data), reference)
    if items is not None:
        answers = {task.render_answer(s) for s in (*test_data.shots, *test_data.scored)}
        assert not {s.id for s in items.samples} & test_data.sample_ids
        assert not {task.render_answer(s) for s in items.samples} & answers
