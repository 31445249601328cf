"""Which wordings of each task's instruction a run generates and gates under (--clue-phrasings N,
--clue-wordings FILE): the reference wording first, then N-1 alternatives, the team's own (from the file, in its
order) before clue's (`clue.tasks.wordings`). The file is read and checked when the session starts."""

from __future__ import annotations

from clue.config import Settings
from clue.errors import ConfigError
from clue.tasks.base import Task
from clue.tasks.wordings import Wording, load_wordings, task_wordings


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

    def all(self, task: Task) -> tuple[Wording, ...]:
        """The reference wording and the alternatives, in the order the results list them."""
        return (task_wordings(task)[0], *self.alternatives(task))
