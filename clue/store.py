"""The generation store (SQLite only): every generation is persisted as soon as it exists, keyed on everything
that determines it (clue/fingerprint.py builds the keys; clue/generation.py drives a backend through the store).

The key hashes the model fingerprint (weight files' content hashes for local folders, the revision for hub ids),
the tokenizer and chat template, the backend and engine version, the generation settings that change outputs, and
the prompt itself. An unchanged key means reuse, a changed one regeneration. An interrupted run (Ctrl-C, a killed
worker, a crash) resumes where it stopped; `--clue-rescore` recomputes metrics from stored generations without
loading any weights.

SQLite in WAL mode with a busy timeout: several pytest-xdist workers can read and write at once. Each row carries a
checksum of its record; a corrupt or truncated row is reported and regenerated, never silently reused.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from clue.files import PRIVATE, atomic_write
from clue.types import Generation


class StoreWarning(UserWarning):
    """A stored generation could not be used (corrupt or truncated) and will be regenerated."""


def canonical(value: Any) -> str:
    """One JSON text per value (sorted keys, no spaces): what keys are hashed over and memo values stored as."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


class GenerationStore:
    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        # outputs can echo patient text: the owner only. SQLite gives its -wal/-shm files the database's mode.
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, PRIVATE))
        os.chmod(path, PRIVATE)  # also a store made before this rule
        self._local = threading.local()
        # Switching a new file to WAL takes an exclusive lock that SQLite does not wait for (no busy handler):
        # xdist workers creating the store at the same moment get "database is locked". Retry, with backoff.
        for attempt in range(40):
            try:
                self._initialise()
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == 39:
                    raise
                time.sleep(min(1.0, 0.01 * 2**attempt))

    def _initialise(self) -> None:
        db = self._connect()
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

    def put(self, key: str, model: str, task: str, generation: Generation) -> None:
        """Persist one generation now. A failed one is stored as a failure: a normal run retries it, a rescore
        scores it as failed (StoredRun)."""
        record = canonical(asdict(generation))
        self._connect().execute(
            "INSERT OR REPLACE INTO generations VALUES (?, ?, ?, ?, ?, ?, ?)",
            (key, model, task, generation.sample_id, record, hashlib.sha256(record.encode()).hexdigest(), time.time()),
        )

    def cached_file_hash(self, ident: tuple[str, int, int]) -> str | None:
        """A file's content hash remembered for (path, size, mtime_ns), or None (clue.fingerprint.file_sha256)."""
        row = (
            self._connect()
            .execute("SELECT sha256 FROM file_hashes WHERE path=? AND size=? AND mtime_ns=?", ident)
            .fetchone()
        )
        return str(row[0]) if row else None

    def remember_file_hash(self, ident: tuple[str, int, int], value: str) -> None:
        self._connect().execute("INSERT OR REPLACE INTO file_hashes VALUES (?, ?, ?, ?)", (*ident, value))

    # -- metric memo: model-based metric values (BERTScore pairs, UMLS concepts of a text) keyed on the metric
    # model's fingerprint and the exact inputs, so a re-run neither recomputes them nor loads the metric models
    def memo_get(self, keys: Iterable[str]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for key, value in self._rows("SELECT key, value FROM metric_memo", keys):
            try:
                found[key] = json.loads(value)
            except ValueError:
                continue  # unreadable: recomputed and overwritten
        return found

    def memo_put(self, items: Mapping[str, Any]) -> None:
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

    def export(self, out: Path, *, model: str | None = None, task: str | None = None) -> int:
        """Write the stored generations (optionally of one model / task) as JSON Lines, mode 0600, atomically:
        {model, task, sample_id, text, finish_reason, prompt_tokens, completion_tokens, error}. Returns the count."""
        query, args = "SELECT key, model, task, record, checksum FROM generations", []
        conditions = [(column, value) for column, value in (("model", model), ("task", task)) if value is not None]
        if conditions:
            query += " WHERE " + " AND ".join(f"{column} = ?" for column, _ in conditions)
            args = [value for _, value in conditions]
        lines = []
        for key, row_model, row_task, record, checksum in self._connect().execute(query + " ORDER BY rowid", args):
            generation = self._decode(key, record, checksum)
            if generation is not None:
                lines.append(canonical({"model": row_model, "task": row_task, **asdict(generation)}) + "\n")
        atomic_write(out, "".join(lines).encode(), PRIVATE)
        return len(lines)

    def count(self) -> int:
        return int(self._connect().execute("SELECT COUNT(*) FROM generations").fetchone()[0])

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
