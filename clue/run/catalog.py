"""The data catalog: one configured task instance per task name, its data file found, read, split and ordered
once, and the ids a run may show of its samples."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from clue import baseline
from clue.config import Settings
from clue.errors import ClueError, DataError
from clue.run.contamination.probes import probe_order
from clue.statistics import sequential
from clue.store.fingerprint import file_sha256
from clue.tasks import get_task
from clue.tasks.base import Task
from clue.types import Sample
from clue.util.pseudonyms import hash_id


@dataclass(frozen=True)
class TaskData:
    task: str
    path: Path
    sha256: str
    shots: tuple[Sample, ...]
    scored: tuple[Sample, ...]
    total: int
    sample_ids: frozenset[str] = frozenset()  # every loaded sample's id, few-shot ones included, before --clue-limit
    answers: frozenset[str] = frozenset()  # the same samples' reference answers, as `Task.answer_key` writes them
    # every sample of the file in an order fixed by the task and the file's bytes alone: the contamination
    # diagnostic probes the first of these, so its probes do not change with --clue-limit, the few-shot seed or
    # --clue-sequential, and a baseline saved at one limit serves a run at another
    probe_pool: tuple[Sample, ...] = ()


@dataclass(frozen=True)
class ReferenceItems:
    """A task's --clue-contamination-reference items: those of the file that are not items of the test file (by id,
    or by reference answer up to spacing, case and punctuation; beyond --clue-limit too: the test file handed
    over again would compare the test items with themselves, and a model trained on the test file saw all of it),
    and how many were left out as test items."""

    path: Path
    samples: tuple[Sample, ...]
    left_out: int


class DataCatalog:
    """Tasks and their data for one run. Every layer asks the catalog for a task, so the test, the generator, the
    scorer and the report share one instance, configured with this run's task options."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._tasks: dict[str, Task] = {}
        self._data: dict[str, TaskData | ClueError | None] = {}
        self._prompt_hashes: dict[str, dict[str, str]] = {}
        self._reference: dict[str, ReferenceItems | ClueError | None] = {}

    def task(self, name: str) -> Task:
        """The registry's task with this run's task options applied, one instance per name."""
        if name not in self._tasks:
            self._tasks[name] = get_task(name).configure(self.settings.tasks)
        return self._tasks[name]

    def shown_id(self, task: str, sample_id: str) -> str:
        """A sample id as it may appear in results, reports, JUnit and messages: raw for public data sets or with
        --clue-report-samples, else hashed (MedNLI pairIDs, MIMIC hadm_ids and MeDiSumQA "note_id/question" ids,
        which hold question text, are credentialed)."""
        if self.task(task).public_data or self.settings.outputs.report_samples:
            return sample_id
        return hash_id(task, sample_id)

    def data_path(self, task: Task) -> Path | None:
        if task.name in self.settings.data.data:
            return self.settings.data.data[task.name]  # named explicitly by the user: taken as given
        if self.settings.data.data_dir is None:
            return None
        return task.find_data(self.settings.data.data_dir)  # DataError for a file resolving outside the folder

    def missing_data_reason(self, task: Task) -> str:
        if task.name in self.settings.data.data:
            return f"{task.title}: data file {self.settings.data.data[task.name]} (from --clue-data) does not exist"
        where = (
            self.settings.data.data_dir / task.name if self.settings.data.data_dir else Path("<data dir>") / task.name
        )
        return (
            f"{task.title}: no data; put {' or '.join(task.data_files)} in {where}/ "
            f"or pass --clue-data {task.name}=FILE"
        )

    def data(self, task: Task) -> TaskData | None:
        """The task's few-shot examples and scored samples; None when the file is absent; DataError if invalid
        (the error is kept, with its type, and raised again for every case of the task)."""
        return _kept(self._data, task.name, lambda: self._read(task))

    def _read(self, task: Task) -> TaskData | None:
        path = self.data_path(task)
        if path is None or not path.is_file():
            return None
        samples = _load(task, path)
        try:
            shots, scored = task.split(samples, self.settings.data.fewshot_seed)
        except DataError as exc:
            raise _named(exc, path) from None
        digest = file_sha256(path)
        if self.settings.gate.sequential:  # a seeded order fixed by task and data: every model sees the same
            ranks = sequential.order(
                [s.id for s in scored], [task.cluster_of(s) for s in scored], f"{task.name}\0{digest}"
            )
            scored = [scored[i] for i in ranks]
        if self.settings.data.limit:
            scored = scored[: self.settings.data.limit]
        ids = frozenset(s.id for s in samples)
        answers = frozenset(task.answer_key(s) for s in samples)
        pool = probe_order(task, samples, digest)
        return TaskData(task.name, path, digest, tuple(shots), tuple(scored), len(samples), ids, answers, pool)

    def reference_items(self, task: Task, data: TaskData) -> ReferenceItems | None:
        """The task's contamination reference items (None: --clue-contamination-reference names no file for it);
        a DataError, kept and raised again, when the file is missing or invalid."""
        return _kept(self._reference, task.name, lambda: self._read_reference(task, data))

    def _read_reference(self, task: Task, data: TaskData) -> ReferenceItems | None:
        path = self.settings.gate.contamination_reference.get(task.name)
        if path is None:
            return None
        if not path.is_file():
            raise DataError(path, "the --clue-contamination-reference file does not exist")
        samples = _load(task, path)
        unseen = tuple(s for s in samples if s.id not in data.sample_ids and task.answer_key(s) not in data.answers)
        return ReferenceItems(path, unseen, len(samples) - len(unseen))

    def prompt_hashes(self, task_name: str) -> dict[str, str]:
        """Sample id -> hash of the prompt the task builds for it, before any model's template or context budget:
        a baseline whose prompts differ measured something else."""
        if task_name not in self._prompt_hashes:
            task = self.task(task_name)
            data = self.data(task)
            assert data is not None
            prompts = task.build_prompts(data.shots, data.scored, None)
            self._prompt_hashes[task_name] = {p.sample_id: baseline.prompt_hash(p) for p in prompts}
        return self._prompt_hashes[task_name]


def _load(task: Task, path: Path) -> list[Sample]:
    """The file's samples; a loader's DataError that names no file names this one."""
    try:
        return task.load(path)
    except DataError as exc:
        raise _named(exc, path) from None


def _named(exc: DataError, path: Path) -> DataError:
    return DataError(path, exc.problem) if exc.path == "<data>" else exc


V = TypeVar("V")


def _kept(cache: dict[str, V | ClueError], key: str, read: Callable[[], V]) -> V:
    """`read()`'s value, once per key: a ClueError is kept too, with its type, and raised again on every call."""
    if key not in cache:
        try:
            cache[key] = read()
        except ClueError as exc:
            cache[key] = exc
    entry = cache[key]
    if isinstance(entry, ClueError):
        raise entry
    return entry
