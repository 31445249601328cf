"""JSON as clue reads every file a person may edit or a tool may damage: data sets, replay files, baselines.

Python's `json` takes a duplicated key silently (the last copy wins), reads `NaN` and `Infinity`, and fails with
RecursionError or a digit-limit ValueError on hostile input. Here each of these is one `JSONProblem` whose message
gives the position and what is wrong, never the content (it may be patient text): callers turn it into their
error, naming the file and the record.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

# one field of a record longer than this is refused at load, with its size named: no published record comes near it
# (MIMIC discharge summaries are tens of thousands of characters), and a 50 MB "document" would otherwise be
# tokenised whole, for minutes and gigabytes, before anything said it was wrong
MAX_FIELD_CHARS = 1_000_000
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_ .-]{0,40}")


class JSONProblem(ValueError):
    """What is wrong with a JSON text, in words that never quote its content."""


def read_text(path: Path) -> str:
    """A file's text as UTF-8, or a JSONProblem saying why not (the byte position, never the bytes' meaning)."""
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JSONProblem(f"not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    except OSError as exc:
        raise JSONProblem(f"cannot be read ({exc.strerror or type(exc).__name__})") from None


def parse(text: str, *, known_keys: Collection[str] = (), name_keys: bool = False, one_line: bool = False) -> Any:
    """`json.loads` that refuses a key given twice in one object, NaN and Infinity, and hostile nesting or numbers.
    A duplicated key is named when it is one of `known_keys` (a schema's field names) or `name_keys` is set (keys
    that are public, e.g. LongHealth's patient ids); otherwise it is described by its length."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                named = name_keys or key in known_keys
                what = repr(key) if named and _FIELD_NAME.fullmatch(key) else f"of {len(key)} characters"
                raise JSONProblem(f"an object holds the key {what} twice (which copy is meant?)")
            out[key] = value
        return out

    def constant(name: str) -> Any:
        raise JSONProblem(f"{name} is not a number JSON allows")

    try:
        return json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    except JSONProblem:
        raise
    except json.JSONDecodeError as exc:
        raise JSONProblem(f"invalid JSON: {decode_problem(exc, one_line=one_line)}") from None
    except RecursionError:
        raise JSONProblem("invalid JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise JSONProblem(f"invalid JSON: {type(exc).__name__} ({str(exc)[:80]})") from None


def decode_problem(exc: json.JSONDecodeError, *, one_line: bool = False) -> str:
    """The decoder's message with its position: "Unterminated string starting at line 3, column 17" (its bare
    `msg` ends in "starting at", which reads as cut off). `one_line`: a JSON Lines record, whose line the caller
    names: the column only."""
    where = f"column {exc.colno}" if one_line else f"line {exc.lineno}, column {exc.colno}"
    return f"{exc.msg.removesuffix(' at')} at {where}"
