"""Tasks by name (clue/tasks/registry.py): CLUE's own, imported only when used, and installed packages' (entry points).

A new task of clue's is one file in this package plus one line in clue/tasks/registry.py.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from clue.tasks.registry import TASKS

if TYPE_CHECKING:
    from clue.tasks.base import Task
    from clue.types import MetricSpec

REGISTRY = TASKS.builtin  # CLUE's own tasks, in the paper's order


@cache
def get_task(name: str) -> Task:
    """A task by name: CLUE's own, or one an installed package declares (entry-point group `clue.tasks`)."""
    task: Task = TASKS.load(name, "task")()
    return task


def task_names() -> list[str]:
    """Every task: CLUE's own, then installed ones."""
    return TASKS.names()


def metric_specs() -> dict[str, MetricSpec]:
    """Every metric a registered task can report, by name, from the tasks' definitions alone (no metric model is
    built): what per-metric options are checked against (a margin within the metric's range)."""
    from clue.metrics.extra import installed

    specs = {spec.name: spec for name in task_names() for spec in get_task(name).metrics(None)}
    return specs | {m.spec.name: m.spec for m in installed()}
