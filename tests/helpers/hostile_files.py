"""Hostile files through clue's readers: the fixture files, their raw ids, hypothesis' settings for the mutation
suites, and `refused_or_read`, which asserts that a reader either reads a file or refuses it naming the file and
echoing nothing planted."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings

from clue.errors import ClueError
from clue.tasks import get_task
from tests.helpers import FIXTURE_DATA
from tests.helpers.hostile import CANARY, names

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


def json_records(task: str) -> list[Any]:
    text = FILES[task].read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()] if text.startswith("{") else []
