"""Results JSON: one file per task x model, written as soon as the test finishes (nothing lost on a crash), and
`clue-results.json` merging this session's files at the end.

Sample text (inputs, outputs, references) and raw sample ids are not written unless --clue-report-samples is given
or the data set is public: credentialed data must not leak into CI artefacts. Model outputs are also kept apart
under `generations/`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from clue.records import SCHEMA_VERSION, CaseRecord, NotRun, RecordError, RunRecord
from clue.util import strict_json
from clue.util.files import SHARED, atomic_write
from clue.util.strict_json import JSONProblem

__all__ = ["SCHEMA_VERSION", "merged", "read_json", "read_record", "read_run", "result_path", "write_json"]


def write_json(path: Path, data: Any) -> Path:
    """Atomic write, readable by CI artefact uploaders (results hold hashed ids and scores only)."""
    payload = json.dumps(data, indent=1, ensure_ascii=False, allow_nan=False).encode()
    return atomic_write(path, payload, SHARED)


def result_path(reports_dir: Path, task: str, case: str, suffix: str = "") -> Path:
    return reports_dir / "results" / task / f"{case}{suffix}.json"


def read_json(path: Path) -> Any:
    """A JSON file clue wrote; RecordError naming the file when it cannot be read."""
    try:
        return strict_json.parse(strict_json.read_text(path), name_keys=True)
    except JSONProblem as exc:
        raise RecordError(f"{path}: cannot be read as JSON ({exc})") from None


def read_record(path: Path) -> CaseRecord:
    """One case's results file, parsed and checked."""
    return CaseRecord.from_json(read_json(path), str(path))


def read_run(path: Path) -> RunRecord:
    """A clue-results.json, parsed and checked."""
    return RunRecord.from_json(read_json(path), str(path))


def merged(
    paths: Iterable[Path],
    held: Sequence[CaseRecord] = (),
    *,
    not_run: Sequence[NotRun] = (),
    strict: bool = False,
    interrupted: bool = False,
) -> RunRecord:
    """clue-results.json's record: this session's per-test files, the records whose files could not be written
    (`held`), and the cases of this run that produced no result (skipped: no data; errored: invalid data, a failed
    model load, a systematic failure) with their reasons. It describes this run only; the caller writes it."""
    read = [read_record(p) for p in sorted(set(paths)) if p.is_file()]
    records = tuple(sorted((*read, *held), key=lambda r: (r.task, r.row)))
    return RunRecord(records, tuple(not_run), strict, interrupted)
