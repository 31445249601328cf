"""The contamination diagnostic's scores in a run: each probed model's scores of its tasks' probes and of the
--clue-contamination-reference items' probes, made while the model's backend is loaded for its generations."""

from __future__ import annotations

import time

from clue.backends.base import Backend
from clue.config import Settings
from clue.errors import ClueError
from clue.run.catalog import DataCatalog, TaskData
from clue.run.contamination import MIN_ITEMS, ProbeScores, probe_task
from clue.run.probes import ProbeSettings, build_probes
from clue.run.stored import counted
from clue.store.sqlite import GenerationStore
from clue.tasks.base import Task

__all__ = ["Probing"]


class Probing:
    """Per (model, task): the scores of the test items' probes and of the reference items' (or why the reference
    file gives none: its problem is the diagnostic's, never the case's)."""

    def __init__(self, settings: Settings, catalog: DataCatalog):
        self.settings = settings
        self.catalog = catalog
        self.probe_scores: dict[tuple[str, str], ProbeScores] = {}
        self.reference_scores: dict[tuple[str, str], ProbeScores | str] = {}

    def score(self, store: GenerationStore, model: str, backend: Backend, task: Task, data: TaskData) -> float:
        """Score the model's probes of the task (stored ones reused); the seconds it took."""
        began = time.perf_counter()
        settings = ProbeSettings.of(self.settings.gate.contamination_items)
        build = lambda: counted(store, backend, lambda c: build_probes(task, data.scored, c, settings))  # noqa: E731
        self.probe_scores[(model, task.name)] = probe_task(
            store, backend, task, build, settings, f"{model}: contamination probes", self.settings.outputs.debug
        )
        reference = self._score_reference(store, model, backend, task, data, settings)
        if reference is not None:
            self.reference_scores[(model, task.name)] = reference
        return time.perf_counter() - began

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
