"""The generation store: every generation is persisted as soon as it exists, keyed on everything that determines it.

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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clue.files import PRIVATE, atomic_write
from clue.types import Generation, GenerationSettings, Prompt

if TYPE_CHECKING:
    from clue.backends.base import Backend

SCHEMA = 1


class StoreWarning(UserWarning):
    """A stored generation could not be used (corrupt or truncated) and will be regenerated."""


def package_version(package: str) -> str:
    """An installed distribution's version (part of fingerprints: a new engine or metric release is a new key)."""
    try:
        return metadata.version(package)
    except (metadata.PackageNotFoundError, ValueError):
        return "missing"


def hub_commit(repo_id: str, revision: str | None) -> str | None:
    """The commit a hub id at `revision` resolves to now, or None when the hub cannot be asked (HF_HUB_OFFLINE,
    no network, an unknown id). One quick request; no retries."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return None
    try:
        from huggingface_hub import model_info

        sha = model_info(repo_id, revision=revision, timeout=10).sha
    except Exception:  # offline, unknown id, gated repository: keyed by name, with a warning
        return None
    return str(sha) if sha else None


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def memo_key(fingerprint: Mapping[str, Any], *inputs: str) -> str:
    return hashlib.sha256(_canonical({"metric": fingerprint, "inputs": inputs}).encode()).hexdigest()


def generation_key(
    model_fingerprint: Mapping[str, Any],
    prompt: Prompt,
    settings: GenerationSettings,
    *,
    per_sample: bool = False,
    batch_size: int | None = None,
) -> str:
    """sha256 over everything that determines the output.

    `per_sample`: the output is not a function of the prompt alone (recorded outputs keyed by sample, or sampling,
    where every repetition is its own draw), so the sample id is part of the key and identical prompts are not
    shared. `batch_size`: for engines whose batching changes outputs (transformers pads batches on the left, which
    changes greedy outputs in float16/bfloat16)."""
    decoding = {"temperature": settings.temperature, "top_p": settings.top_p, "seed": settings.seed}
    payload: dict[str, Any] = {
        "schema": SCHEMA,
        "model": model_fingerprint,
        "decoding": decoding,
        "task": prompt.task,
        "messages": [[m.role, m.content] for m in prompt.messages],
        "max_new_tokens": prompt.max_new_tokens,
        "truncatable": prompt.truncatable,
    }
    if per_sample:
        payload["sample_id"] = prompt.sample_id
    if batch_size is not None:
        payload["batch_size"] = batch_size
    return hashlib.sha256(_canonical(payload).encode()).hexdigest()


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
        self.corrupt = 0

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
            self.corrupt += 1
            warnings.warn(
                StoreWarning(f"{self.path}: stored generation {key[:12]} is unusable ({exc}); regenerating"),
                stacklevel=3,
            )
            return None
        return generation

    def put(self, key: str, model: str, task: str, generation: Generation) -> None:
        """Persist one generation now. A failed one is stored as a failure: a normal run retries it, a rescore
        scores it as failed (StoredRun)."""
        record = _canonical(asdict(generation))
        self._connect().execute(
            "INSERT OR REPLACE INTO generations VALUES (?, ?, ?, ?, ?, ?, ?)",
            (key, model, task, generation.sample_id, record, hashlib.sha256(record.encode()).hexdigest(), time.time()),
        )

    def file_sha256(self, file: Path) -> str:
        """Content hash of a file, computed once per (path, size, mtime): weight files are hashed once, not per run."""
        stat = file.stat()
        ident = (str(file.resolve()), stat.st_size, stat.st_mtime_ns)
        db = self._connect()
        row = db.execute("SELECT sha256 FROM file_hashes WHERE path=? AND size=? AND mtime_ns=?", ident).fetchone()
        if row:
            return str(row[0])
        digest = hashlib.sha256()
        with file.open("rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                digest.update(block)
        value = digest.hexdigest()
        db.execute("INSERT OR REPLACE INTO file_hashes VALUES (?, ?, ?, ?)", (*ident, value))
        return value

    def folder_fingerprint(self, folder: Path) -> dict[str, str]:
        """Content hashes of every file in a model folder (weights, config, tokenizer, template)."""
        return {
            str(f.relative_to(folder)): self.file_sha256(f)
            for f in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
        }

    def location_fingerprint(self, location: str, revision: str | None = None) -> dict[str, str]:
        """A model or tokenizer location: its files' content hashes when it is a local folder; for a hub id, the
        commit its revision (default main) resolves to, so new weights pushed to the hub are a new key. Offline,
        the id can only be keyed by name (and revision): that is warned about, loudly."""
        folder = Path(location)
        if folder.is_dir():
            return self.folder_fingerprint(folder)
        commit = hub_commit(location, revision)
        if commit is not None:
            return {"hub_id": location, "commit": commit}
        pinned = revision is not None and len(revision) == 40 and all(c in "0123456789abcdef" for c in revision)
        if not pinned:
            warnings.warn(
                StoreWarning(
                    f"{location}: the Hugging Face hub cannot be reached to resolve revision {revision or 'main'!r} "
                    "to a commit, so stored generations are keyed by the model's name only: if the weights on the "
                    'hub have changed, outputs of the old weights are reused. Pin revision = "<commit hash>" in '
                    "the matrix entry, or point path at a local folder."
                ),
                stacklevel=2,
            )
        return {"hub_id": location, "revision": str(revision)}

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
                "INSERT OR REPLACE INTO metric_memo VALUES (?, ?)", [(k, _canonical(v)) for k, v in items.items()]
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
                lines.append(_canonical({"model": row_model, "task": row_task, **asdict(generation)}) + "\n")
        atomic_write(out, "".join(lines).encode(), PRIVATE)
        return len(lines)

    def count(self) -> int:
        return int(self._connect().execute("SELECT COUNT(*) FROM generations").fetchone()[0])

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


@dataclass
class StoredRun:
    """One model's prompts against the store: stored generations are reused, the rest generated and stored one by
    one as they arrive (an interrupted run resumes where it stopped). Identical prompts (LongHealth's repeated
    questions can shuffle to the same order) are generated once where the output is a function of the prompt alone
    (greedy decoding on a model); a generation then answers for every sample with that prompt, under the sample's
    own id. Recorded outputs (replay) and sampled outputs are per sample: their keys carry the sample id."""

    store: GenerationStore
    model: str
    prompts: Sequence[Prompt]
    keys: list[str]
    outputs: list[Generation | None]
    twins: dict[str, list[int]]  # key of a prompt to generate -> every index with that key, the first is generated
    reused: int

    @classmethod
    def plan(
        cls,
        store: GenerationStore,
        model: str,
        fingerprint: Mapping[str, Any],
        prompts: Sequence[Prompt],
        settings: GenerationSettings,
        *,
        per_sample_outputs: bool = False,
        batch_sensitive: bool = False,
        retry_failures: bool = True,
    ) -> StoredRun:
        """Look every prompt up in the store. Stored failures are retried (`retry_failures`, a normal run) or used
        as they are (a rescore, which must not generate)."""
        per_sample = per_sample_outputs or not settings.greedy
        batch = settings.batch_size if batch_sensitive else None
        keys = [generation_key(fingerprint, p, settings, per_sample=per_sample, batch_size=batch) for p in prompts]
        stored = {
            key: generation
            for key, generation in store.get_many(keys).items()
            if not (retry_failures and generation.error is not None)
        }
        outputs: list[Generation | None] = [
            replace(stored[key], sample_id=prompt.sample_id) if key in stored else None
            for key, prompt in zip(keys, prompts, strict=True)
        ]
        twins: dict[str, list[int]] = {}
        for i, key in enumerate(keys):
            if key not in stored:
                twins.setdefault(key, []).append(i)
        return cls(store, model, prompts, keys, outputs, twins, len(keys) - sum(map(len, twins.values())))

    @property
    def missing(self) -> list[int]:
        """Indices of the prompts to generate, one per distinct prompt."""
        return [indices[0] for indices in self.twins.values()]

    @property
    def generated(self) -> int:
        return sum(self.outputs[i] is not None for i in self.missing)

    def generate(
        self,
        backend: Backend,
        settings: GenerationSettings,
        desc: str,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[Generation]:
        """Run what is missing; every result is stored as it arrives (a failure as a failure: retried next run).
        `progress(done, total)` is called after each new generation."""
        missing = self.missing
        done = 0

        def keep(j: int, generation: Generation) -> None:
            nonlocal done
            i = missing[j]
            for twin in self.twins[self.keys[i]]:
                self.outputs[twin] = replace(generation, sample_id=self.prompts[twin].sample_id)
            self.store.put(self.keys[i], self.model, self.prompts[i].task, generation)
            done += 1
            if progress is not None:
                progress(done, len(missing))

        if missing:
            backend.generate([self.prompts[i] for i in missing], settings, desc=desc, on_result=keep)
        assert all(o is not None for o in self.outputs)
        return [o for o in self.outputs if o is not None]
