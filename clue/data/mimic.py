"""Streaming readers for the MIMIC-IV files the builders need (plain or .gz CSV, as PhysioNet ships them).

MIMIC-IV-Note's discharge.csv is several GB: it is read row by row, never into memory, with a progress bar over
bytes. Every error names the file, the line and the column.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any, cast

from clue.errors import DataError
from clue.util.files import PRIVATE, atomic_write

NOTE_COLUMNS = ("note_id", "subject_id", "hadm_id", "note_type", "note_seq", "charttime", "storetime", "text")
DIAGNOSES_COLUMNS = ("subject_id", "hadm_id", "seq_num", "icd_code", "icd_version")


def _open(path: Path) -> IO[str]:
    try:
        raw: IO[bytes] = path.open("rb")
    except OSError as exc:
        raise DataError(path, f"cannot be read ({exc.strerror})") from None
    stream = cast(IO[bytes], gzip.GzipFile(fileobj=raw)) if path.name.endswith(".gz") else raw
    return io.TextIOWrapper(stream, encoding="utf-8", newline="")


def read_rows(path: Path, required: tuple[str, ...], desc: str) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) for each data row; the header must contain `required`."""
    from tqdm.auto import tqdm

    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # discharge summaries exceed csv's default 128 kB field limit
    with _open(path) as text, tqdm(desc=desc, unit="row", leave=False) as bar:
        reader = csv.DictReader(text)
        try:
            header = reader.fieldnames or []
        except (csv.Error, OSError, UnicodeDecodeError, EOFError) as exc:
            raise DataError(path, f"not a readable CSV file ({exc})") from None
        missing = [c for c in required if c not in header]
        if missing:
            raise DataError(
                path,
                # the header is not echoed: a file without one starts with a record, a note's text
                f"missing column(s) {', '.join(missing)} (the first line has {len(header)} fields; is it the header?)",
                record="line 1",
            )
        try:
            for row in reader:
                bar.update(1)
                yield reader.line_num, row
        except (csv.Error, OSError, UnicodeDecodeError, EOFError) as exc:
            raise DataError(path, f"unreadable ({exc})", record=f"line {reader.line_num}") from None


def write_json_array(out: Path, records: Sequence[Any]) -> str:
    """Write records atomically (a crash leaves no half file) with mode 0600 (credentialed text); returns sha256."""
    payload = json.dumps(list(records), ensure_ascii=False, indent=1).encode()
    atomic_write(out, payload, PRIVATE)
    return hashlib.sha256(payload).hexdigest()
