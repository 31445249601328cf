"""Tasks that installed packages add (entry-point group `clue.tasks`, clue/tasks/registry.py): each runs like one of
CLUE's own, with the same gate and report, e.g. `pytest benchmarks -k hospital_nli`. Nothing is collected when no
package adds a task."""

from collections.abc import Callable

import pytest

from clue.tasks.registry import TASKS
from clue.types import TaskResult

INSTALLED = sorted(TASKS.installed())

if INSTALLED:

    @pytest.mark.parametrize(
        "task_name", [pytest.param(name, marks=pytest.mark.clue_task(name), id=name) for name in INSTALLED]
    )
    def test_installed_task(task_name: str, clue_result: TaskResult, clue_gate: Callable[[TaskResult], object]) -> None:
        clue_gate(clue_result)
