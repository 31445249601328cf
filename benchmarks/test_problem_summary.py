"""Problem Summary (Level 1): BioNLP-2023 1A problem lists, ROUGE + BERTScore + UMLS-entity F1, 3-shot."""

from collections.abc import Callable

import pytest

from clue.types import TaskResult


@pytest.mark.clue_task("problem_summary")
def test_problem_summary(clue_result: TaskResult, clue_gate: Callable[[TaskResult], object]) -> None:
    clue_gate(clue_result)
