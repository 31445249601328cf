"""Errors that name what is wrong and where, so a user never has to read a traceback to fix their data."""

from __future__ import annotations

from pathlib import Path


class ClueError(Exception):
    """Base class: anything clue raises on purpose for bad input or configuration."""


class DataError(ClueError):
    """A data file, or one record in it, does not match the published format."""

    def __init__(self, path: Path | str, problem: str, *, record: str | None = None, field: str | None = None):
        self.path, self.record, self.field, self.problem = str(path), record, field, problem
        where = self.path + (f", record {record}" if record is not None else "")
        where += f", field {field!r}" if field is not None else ""
        super().__init__(f"{where}: {problem}")


class ConfigError(ClueError):
    """The model matrix, an option or a model entry is wrong."""


class StoreError(ClueError):
    """The generation store cannot be used (corrupt, unreadable, read-only where a write is needed): the message names
    the file and what to do."""


def describe(value: object) -> str:
    """What a value is, never what it says: a value that failed validation may be a sentence of patient text, so
    messages describe it by type and size ("a string of 57 characters") and never echo it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "an empty string" if not value else f"a string of {len(value):,} characters"
    if isinstance(value, dict):
        return f"an object with {len(value)} key{'s' if len(value) != 1 else ''}"
    if isinstance(value, list | tuple):
        return f"a list of {len(value)} item{'s' if len(value) != 1 else ''}"
    return f"a {type(value).__name__}"


class DataWarning(UserWarning):
    """A published data file has a known quirk that clue resolves as the reference does (named in the message)."""


class ReportsWarning(UserWarning):
    """`clue.evaluate(write_reports=True)`: a report or baseline could not be written (named, with the reason); the
    results are returned all the same."""


# exceptions whose messages name files, modules or memory, never a prompt or an output: shown as they are
_PLAIN_MESSAGES = (OSError, ImportError, MemoryError)


def exception_text(exc: BaseException, *, debug: bool = False) -> str:
    """An unexpected exception in words an artefact may hold: clue's own errors and those of `_PLAIN_MESSAGES` (and
    CUDA's out-of-memory) with their message; any other only by type, since an engine's, a tokenizer's or a
    metric's message may quote the prompt or the output it failed on. `debug` (--clue-debug) shows every message."""
    name = type(exc).__name__
    if debug or isinstance(exc, (ClueError, *_PLAIN_MESSAGES)) or "OutOfMemory" in name:
        return f"{name}: {exc}"
    return f"{name} (its message is withheld: it may quote patient text; --clue-debug shows it)"
