"""The task registry: name -> "module:Class", imported only when a task is used (lm-eval-harness style).

A new task is one file in this package plus one line here.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import TYPE_CHECKING

from clue.errors import ConfigError

if TYPE_CHECKING:
    from clue.tasks.base import Task

REGISTRY: dict[str, str] = {
    "mednli": "clue.tasks.mednli:MedNLI",
    "meqsum": "clue.tasks.meqsum:MeQSum",
    "problem_summary": "clue.tasks.problem_summary:ProblemSummary",
    "longhealth_task1": "clue.tasks.longhealth:LongHealthTask1",
    "longhealth_task2": "clue.tasks.longhealth:LongHealthTask2",
    "longhealth_task3": "clue.tasks.longhealth:LongHealthTask3",
    "medisumqa": "clue.tasks.medisumqa:MeDiSumQA",
    "medisumcode": "clue.tasks.medisumcode:MeDiSumCode",
}


@cache
def get_task(name: str) -> Task:
    try:
        target = REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown task {name!r}; known tasks: {', '.join(sorted(REGISTRY))}") from None
    module, cls = target.split(":")
    task: Task = getattr(importlib.import_module(module), cls)()
    return task


def metric_names() -> set[str]:
    """Every metric name a registered task can report (for validating per-metric options such as margins)."""
    from clue.metrics.scorers import Scorers

    scorers = Scorers()
    return {spec.name for name in REGISTRY for spec in get_task(name).metrics(scorers)}
