"""The generation store (SQLite only): every generation is persisted as soon as it exists, keyed on everything
that determines it (clue/store/fingerprint.py builds the keys; clue/run/store_loop.py drives a backend through the
store).

The key hashes the model fingerprint (weight files' content hashes for local folders, the revision for hub ids),
the tokenizer and chat template, the backend and engine version, the generation settings that change outputs, and
the prompt itself. An unchanged key means reuse, a changed one regeneration. An interrupted run (Ctrl-C, a killed
worker, a crash) resumes where it stopped; `--clue-rescore` recomputes metrics from stored generations without
loading any weights.

SQLite in WAL mode with a busy timeout: several pytest-xdist workers can read and write at once. Each row carries a
checksum of its record; a corrupt or truncated row is reported and regenerated, never silently reused.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sqlite3
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

from clue.errors import StoreError
from clue.types import Generation
from clue.util.files import PRIVATE, atomic_write

T = TypeVar("T")


class StoreWarning(UserWarning):
    """A stored generation could not be used (corrupt or truncated) and will be regenerated."""


def canonical(value: Any) -> str:
    """One JSON text per value (sorted keys, no spaces): what keys are hashed over and memo values stored as."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


_REMEDY = (
    "move it aside (or delete it) and run again: clue rebuilds the store and regenerates what it held "
    "(outputs you need can be exported first with `clue store export` while the file is readable)"
)


def _guarded(method: Callable[..., T]) -> Callable[..., T]:
    """SQLite's errors as one StoreError naming the file and what to do: a corrupt page surfaces at whichever
    query first reads it, and "database disk image is malformed" alone names neither."""

    @functools.wraps(method)
    def wrapper(self: GenerationStore, *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            raise self.error(exc) from None

    return wrapper


class GenerationStore:
    def __init__(self, path: Path):
        self.path = path
        self._local = threading.local()
        self.read_only = False
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # outputs can echo patient text: the owner only. SQLite gives its -wal/-shm files the database's mode.
            os.close(os.open(path, os.O_CREAT | os.O_RDWR, PRIVATE))
            os.chmod(path, PRIVATE)  # also a store made before this rule
        except OSError as exc:
            if not path.is_file():
                raise StoreError(
                    f"generation store {path}: cannot be created ({exc.strerror or type(exc).__name__}): point "
                    "--clue-cache-dir at a writable folder"
                ) from None
            # a read-only cache (a shared or mounted store): serve what it holds; storing anything new fails
            self.read_only = True
        # Switching a new file to WAL takes an exclusive lock that SQLite does not wait for (no busy handler):
        # xdist workers creating the store at the same moment get "database is locked". Retry, with backoff.
        for attempt in range(40):
            try:
                self._initialise()
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == 39:
                    raise self.error(exc) from None
                time.sleep(min(1.0, 0.01 * 2**attempt))
            except sqlite3.DatabaseError as exc:
                raise self.error(exc) from None

    def read_only_error(self, what: str = "a new generation must be stored") -> StoreError:
        return StoreError(
            f"generation store {self.path} is read-only and {what}: make it writable, or point --clue-cache-dir at "
            "a writable copy"
        )

    def error(self, exc: sqlite3.DatabaseError) -> StoreError:
        """The one error for an unusable store: the file, what SQLite said, what to do."""
        if "readonly" in str(exc) or "read-only" in str(exc):
            return self.read_only_error()
        if "locked" in str(exc):
            return StoreError(f"generation store {self.path}: still locked by another process after 60 s ({exc})")
        return StoreError(f"generation store {self.path} cannot be used ({type(exc).__name__}: {exc}): {_REMEDY}")

    def _initialise(self) -> None:
        db = self._connect()
        if self.read_only:
            db.execute("SELECT COUNT(*) FROM generations").fetchone()  # a corrupt or foreign file fails here
            return
        if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            db.execute("PRAGMA journal_mode=WAL")
        db.execute(
            "CREATE TABLE IF NOT EXISTS generations (key TEXT PRIMARY KEY, model TEXT, task TEXT, "
            "sample_id TEXT, record TEXT NOT NULL, checksum TEXT NOT NULL, created REAL)"
        )
        db.execute(
            "CREATE TABLE IF NOT EXISTS file_hashes (path TEXT, size INTEGER, mtime_ns INTEGER, sha256 TEXT, "
            "PRIMARY KEY (path, size, mtime_ns))"
        )
        db.execute("CREATE TABLE IF NOT EXISTS metric_memo (key TEXT PRIMARY KEY, value TEXT NOT NULL)")

    def _connect(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            if self.read_only:  # immutable: no -shm/-wal file is created, no lock taken (nobody can write it)
                db = sqlite3.connect(f"{self.path.resolve().as_uri()}?immutable=1", uri=True, isolation_level=None)
            else:
                db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
                db.execute("PRAGMA busy_timeout=60000")
                db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    def _rows(self, select: str, keys: Iterable[str]) -> list[tuple[Any, ...]]:
        """`select ... WHERE key IN (...)` over distinct keys, in chunks below SQLite's variable limit."""
        wanted = list(dict.fromkeys(keys))
        db = self._connect()
        rows: list[tuple[Any, ...]] = []
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            rows += db.execute(f"{select} WHERE key IN ({','.join('?' * len(chunk))})", chunk).fetchall()
        return rows

    @_guarded
    def get_many(self, keys: Iterable[str]) -> dict[str, Generation]:
        """The usable stored generations among `keys`; corrupt rows are reported (StoreWarning) and left out."""
        found: dict[str, Generation] = {}
        for key, record, checksum in self._rows("SELECT key, record, checksum FROM generations", keys):
            generation = self._decode(key, record, checksum)
            if generation is not None:
                found[key] = generation
        return found

    def _decode(self, key: str, record: str, checksum: str) -> Generation | None:
        try:
            if hashlib.sha256(record.encode()).hexdigest() != checksum:
                raise ValueError("checksum mismatch")
            generation = Generation(**json.loads(record))
            if not isinstance(generation.text, str):
                raise ValueError("text is not a string")
        except (ValueError, TypeError) as exc:
            warnings.warn(
                StoreWarning(f"{self.path}: stored generation {key[:12]} is unusable ({exc}); regenerating"),
                stacklevel=3,
            )
            return None
        return generation

    @_guarded
    def put(self, key: str, model: str, task: str, generation: Generation) -> None:
        """Persist one generation now. A failed one is stored as a failure: a normal run retries it, a rescore
        scores it as failed (StoredRun)."""
        if self.read_only:
            raise self.error(sqlite3.OperationalError("readonly"))
        record = canonical(asdict(generation))
        self._connect().execute(
            "INSERT OR REPLACE INTO generations VALUES (?, ?, ?, ?, ?, ?, ?)",
            (key, model, task, generation.sample_id, record, hashlib.sha256(record.encode()).hexdigest(), time.time()),
        )

    @_guarded
    def cached_file_hash(self, ident: tuple[str, int, int]) -> str | None:
        """A file's content hash remembered for (path, size, mtime_ns), or None (clue.store.fingerprint.file_sha256)."""
        row = (
            self._connect()
            .execute("SELECT sha256 FROM file_hashes WHERE path=? AND size=? AND mtime_ns=?", ident)
            .fetchone()
        )
        return str(row[0]) if row else None

    @_guarded
    def remember_file_hash(self, ident: tuple[str, int, int], value: str) -> None:
        if self.read_only:
            return  # a memo: computed again next time
        self._connect().execute("INSERT OR REPLACE INTO file_hashes VALUES (?, ?, ?, ?)", (*ident, value))

    # -- metric memo: model-based metric values (BERTScore pairs, UMLS concepts of a text) keyed on the metric
    # model's fingerprint and the exact inputs, so a re-run neither recomputes them nor loads the metric models
    @_guarded
    def memo_get(self, keys: Iterable[str]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for key, value in self._rows("SELECT key, value FROM metric_memo", keys):
            try:
                found[key] = json.loads(value)
            except ValueError:
                continue  # unreadable: recomputed and overwritten
        return found

    @_guarded
    def memo_put(self, items: Mapping[str, Any]) -> None:
        if self.read_only:
            return  # a memo: computed again next time
        db = self._connect()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "INSERT OR REPLACE INTO metric_memo VALUES (?, ?)", [(k, canonical(v)) for k, v in items.items()]
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    @_guarded
    def export(self, out: Path, *, model: str | None = None, task: str | None = None) -> int:
        """Write the stored generations (optionally of one model / task) as JSON Lines, mode 0600, atomically:
        {model, task, sample_id, text, finish_reason, prompt_tokens, completion_tokens, error}. Returns the count.
        A model or task the store holds nothing of is a StoreError listing what it holds (a typo must not write an
        empty file and succeed)."""
        if out.is_dir():
            raise StoreError(f"--out {out} is a folder: name the JSON Lines file to write")
        db = self._connect()
        for column, value in (("model", model), ("task", task)):
            held = sorted(str(r[0]) for r in db.execute(f"SELECT DISTINCT {column} FROM generations"))
            if value is not None and value not in held:
                raise StoreError(
                    f"generation store {self.path} holds no generations of {column} {value!r}; "
                    f"it holds {', '.join(held) or 'none'}"
                )
        query, args = "SELECT key, model, task, record, checksum FROM generations", []
        conditions = [(column, value) for column, value in (("model", model), ("task", task)) if value is not None]
        if conditions:
            query += " WHERE " + " AND ".join(f"{column} = ?" for column, _ in conditions)
            args = [value for _, value in conditions]
        lines = []
        for key, row_model, row_task, record, checksum in db.execute(query + " ORDER BY rowid", args):
            generation = self._decode(key, record, checksum)
            if generation is not None:
                lines.append(canonical({"model": row_model, "task": row_task, **asdict(generation)}) + "\n")
        try:
            atomic_write(out, "".join(lines).encode(), PRIVATE)
        except OSError as exc:
            raise StoreError(f"cannot write {out} ({exc.strerror or type(exc).__name__})") from None
        return len(lines)

    @_guarded
    def count(self) -> int:
        return int(self._connect().execute("SELECT COUNT(*) FROM generations").fetchone()[0])

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
