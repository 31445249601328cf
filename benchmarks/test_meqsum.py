"""MeQSum (Level 1): consumer health question summarisation, ROUGE-1/2/L + BERTScore, 3-shot."""

from collections.abc import Callable

import pytest

from clue.types import TaskResult


@pytest.mark.clue_task("meqsum")
def test_meqsum(clue_result: TaskResult, clue_gate: Callable[[TaskResult], object]) -> None:
    clue_gate(clue_result)
