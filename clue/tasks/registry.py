"""Tasks by name: CLUE's own (one line each here) and what installed packages declare under the entry-point group
`clue.tasks`. A third-party package adds a task with one file and one line in its pyproject.toml:

    [project.entry-points."clue.tasks"]
    hospital_nli = "hospital_clue:HospitalNLI"

and it runs as `pytest benchmarks -k hospital_nli`, with the same gate and report as CLUE's own tasks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clue.util.registry import Registry

if TYPE_CHECKING:
    from clue.tasks.base import Task


def _task_class(found: object) -> bool:
    from clue.tasks.base import Task

    return isinstance(found, type) and issubclass(found, Task)


TASKS: Registry[type[Task]] = Registry(
    "clue.tasks",
    {
        "mednli": "clue.tasks.mednli:MedNLI",
        "meqsum": "clue.tasks.meqsum:MeQSum",
        "problem_summary": "clue.tasks.problem_summary:ProblemSummary",
        "longhealth_task1": "clue.tasks.longhealth:LongHealthTask1",
        "longhealth_task2": "clue.tasks.longhealth:LongHealthTask2",
        "longhealth_task3": "clue.tasks.longhealth:LongHealthTask3",
        "medisumqa": "clue.tasks.medisumqa:MeDiSumQA",
        "medisumcode": "clue.tasks.medisumcode:MeDiSumCode",
    },
    _task_class,
    "a subclass of clue.tasks.base.Task",
)
