"""LongHealth (Level 2): multiple choice over long patient records, accuracy per sub-task, no few-shot.

task 1: answer documents only; task 2: answer documents + distractors from other patients; task 3: distractors
only, "cannot be answered" (F) is correct. Documents are budgeted to each model's context by token count.
"""

from collections.abc import Callable

import pytest

from clue.types import TaskResult


@pytest.mark.clue_task("longhealth_task1")
def test_longhealth_task1(clue_result: TaskResult, clue_gate: Callable[[TaskResult], object]) -> None:
    clue_gate(clue_result)


@pytest.mark.clue_task("longhealth_task2")
def test_longhealth_task2(clue_result: TaskResult, clue_gate: Callable[[TaskResult], object]) -> None:
    clue_gate(clue_result)


@pytest.mark.clue_task("longhealth_task3")
def test_longhealth_task3(clue_result: TaskResult, clue_gate: Callable[[TaskResult], object]) -> None:
    clue_gate(clue_result)
