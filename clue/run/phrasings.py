"""Which wordings of each task's instruction a run generates and gates under (--clue-phrasings N,
--clue-wordings FILE): the reference wording first, then N-1 alternatives, the team's own (from the file, in its
order) before clue's (`clue.tasks.wordings`). The file is read and checked when the session starts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from clue.config import Settings
from clue.errors import ClueError, ConfigError
from clue.run.catalog import TaskData
from clue.tasks.base import Task
from clue.tasks.wordings import Wording, load_wordings, task_wordings, worded
from clue.types import Generation, Prompt

Worded = dict[str, tuple[Generation, ...]]  # wording id -> the generations of a task's samples under it


class Phrasings:
    """The run's wordings per task; `count` 1 is the ordinary run (the reference wording alone)."""

    def __init__(self, settings: Settings):
        self.count = settings.gate.phrasings
        path = settings.gate.wordings
        self.mine = load_wordings(path) if path is not None else {}

    @property
    def active(self) -> bool:
        return self.count > 1

    def alternatives(self, task: Task) -> tuple[Wording, ...]:
        """The N-1 alternative wordings `task` is generated under (none when N is 1). Raises ConfigError when the
        task has fewer than N wordings."""
        if self.count == 1:
            return ()
        clue = task_wordings(task)[1:]
        available = [*self.mine.get(task.name, ()), *clue]
        if len(available) < self.count - 1:
            raise ConfigError(
                f"--clue-phrasings {self.count}: {task.name} has {len(available) + 1} wordings (the reference and "
                f"{len(available)} alternatives); add your own with --clue-wordings FILE or ask for fewer"
            )
        return tuple(available[: self.count - 1])

    def generate(
        self,
        todo: Sequence[tuple[Task, TaskData, Any]],
        build: Callable[[Task, TaskData], list[Prompt]],
        run: Callable[[list[Prompt]], list[Generation]],
        failure: Callable[[Task, tuple[Generation, ...]], ClueError | None],
    ) -> dict[str, Worded | ClueError]:
        """Each task's samples under its alternative wordings, in one `run` (the generator's pass through the
        store). `todo` holds each task with what the reference wording produced (its generations, None before a
        fixed task's are kept, or its error): the samples it generated are generated again under each wording
        (all of them, or a sequential task's up to its last stop). `failure` checks each wording's generations
        for a systematic failure, which becomes the task's error."""
        found: dict[str, Worded | ClueError] = {}
        jobs: list[tuple[Task, Wording, list[Prompt]]] = []
        for task, data, entry in todo:
            if isinstance(entry, ClueError):
                continue
            upto = len(entry.generations) if entry is not None else len(data.scored)
            try:
                wordings = self.alternatives(task)
            except ClueError as exc:
                found[task.name] = exc
                continue
            jobs += [(task, wording, build(worded(task, wording), data)[:upto]) for wording in wordings]
        outputs = run([p for _, _, prompts in jobs for p in prompts])
        start = 0
        for task, wording, prompts in jobs:
            chunk = tuple(outputs[start : start + len(prompts)])
            start += len(prompts)
            kept = found.setdefault(task.name, {})
            if isinstance(kept, ClueError):
                continue
            problem = failure(task, chunk)
            if problem is not None:
                found[task.name] = ClueError(f"under the wording {wording.id!r}: {problem}")
            else:
                kept[wording.id] = chunk
        return found
