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


class DataWarning(UserWarning):
    """A published data file has a known quirk that clue resolves as the reference does (named in the message)."""
