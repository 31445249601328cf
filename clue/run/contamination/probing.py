"""The contamination diagnostic's scores in a run: each probed model's scores of its tasks' probes and of the
--clue-contamination-reference items' probes, made while the model's backend is loaded for its generations; the
generator hands them on in what it returns (`Generated`)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from clue.backends.base import Backend
from clue.config import Settings
from clue.errors import ClueError, ConfigError
from clue.run.catalog import DataCatalog, TaskData
from clue.run.contamination.probes import ProbeSettings, build_probes
from clue.run.contamination.scores import MIN_ITEMS, ProbeScores, probe_task
from clue.run.store_loop import counted
from clue.store.sqlite import GenerationStore
from clue.tasks.base import Task

__all__ = ["Probing", "TaskProbes", "check_references"]


@dataclass(frozen=True)
class TaskProbes:
    """One model's scores of one task's probes, and of its reference items' (None: no reference file for the task;
    a string: why the file gives none, a problem of the diagnostic's, never of the case's); `seconds` it took."""

    scores: ProbeScores
    reference: ProbeScores | str | None
    seconds: float


def check_references(settings: Settings, catalog: DataCatalog) -> None:
    """Start-up: every --clue-contamination-reference file the user named is read and holds enough items that are
    not test items, or the run is a usage error naming the file and what is wrong. A file set aside with a note
    would let the weaker statistic decide, and a gate under `--clue-contamination fail` pass by accident."""
    if settings.gate.contamination == "off":
        return
    for name, path in settings.gate.contamination_reference.items():
        flag = f"--clue-contamination-reference {name}={path}"
        try:
            task = catalog.task(name)
            data = catalog.data(task)
            if data is None:  # no test data (the task is skipped): the file itself must still be readable
                task.load(path)
                continue
            items = catalog.reference_items(task, data)
        except ClueError as exc:
            raise ConfigError(f"{flag}: {exc}") from None
        if items is not None and len(items.samples) < MIN_ITEMS:
            raise ConfigError(
                f"{flag}: {len(items.samples)} items that are not test items (needs {MIN_ITEMS}; {items.left_out} "
                f"of its {items.left_out + len(items.samples)} are the test file's, by id or answer, up to "
                "spacing, case and punctuation)"
            )


class Probing:
    """Scores a model's probes of a task while its backend is loaded for its generations (stored scores reused)."""

    def __init__(self, settings: Settings, catalog: DataCatalog):
        self.settings = settings
        self.catalog = catalog

    def score(self, store: GenerationStore, model: str, backend: Backend, task: Task, data: TaskData) -> TaskProbes:
        began = time.perf_counter()
        settings = ProbeSettings.of(self.settings.gate.contamination_items)
        build = lambda: counted(store, backend, lambda c: build_probes(task, data.probe_pool, c, settings))  # noqa: E731
        scores = probe_task(
            store, backend, task, build, settings, f"{model}: contamination probes", self.settings.outputs.debug
        )
        reference = self._score_reference(store, model, backend, task, data, settings)
        return TaskProbes(scores, reference, time.perf_counter() - began)

    def _score_reference(
        self, store: GenerationStore, model: str, backend: Backend, task: Task, data: TaskData, settings: ProbeSettings
    ) -> ProbeScores | str | None:
        """The model's scores of the probes of the task's --clue-contamination-reference items (None: no file for
        the task), or why there are none (a string)."""
        try:
            items = self.catalog.reference_items(task, data)
        except ClueError as exc:
            return str(exc)
        if items is None:
            return None
        samples = items.samples
        if len(samples) < MIN_ITEMS:
            return (
                f"{items.path.name}: {len(samples)} items that are not test items (needs {MIN_ITEMS}; "
                f"{items.left_out} of its {items.left_out + len(samples)} are the test data's, by id or answer)"
            )
        build = lambda: counted(store, backend, lambda c: build_probes(task, samples, c, settings))  # noqa: E731
        desc = f"{model}: contamination reference probes"
        return probe_task(store, backend, task, build, settings, desc, self.settings.outputs.debug)
