"""MeDiSumCode (Level 2): ICD-10 codes from discharge summaries, exact / 3-character F1 and valid-code share, 1-shot."""

from collections.abc import Callable

import pytest

from clue.types import TaskResult


@pytest.mark.clue_task("medisumcode")
def test_medisumcode(clue_result: TaskResult, clue_gate: Callable[[TaskResult], object]) -> None:
    clue_gate(clue_result)
