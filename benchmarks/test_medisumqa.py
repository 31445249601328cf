"""MeDiSumQA (Level 2): QA on discharge summaries, ROUGE + BERTScore + UMLS-entity F1, 1-shot."""

from collections.abc import Callable

import pytest

from clue.types import TaskResult


@pytest.mark.clue_task("medisumqa")
def test_medisumqa(clue_result: TaskResult, clue_gate: Callable[[TaskResult], object]) -> None:
    clue_gate(clue_result)
