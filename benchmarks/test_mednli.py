"""MedNLI (Level 1): natural language inference on clinical sentences, accuracy, 3-shot."""

from collections.abc import Callable

import pytest

from clue.types import TaskResult


@pytest.mark.clue_task("mednli")
def test_mednli(clue_result: TaskResult, clue_gate: Callable[[TaskResult], object]) -> None:
    clue_gate(clue_result)
