"""clue's pytest hooks (registered with `pytest_addhooks`): a conftest.py can add metrics, restyle a verdict's first
line, or receive every finished case's results.

    # conftest.py
    from clue.metrics.extra import ExtraMetric
    from clue.records import CaseRow
    from clue.types import MetricSpec

    def pytest_clue_metrics(config):
        length = MetricSpec("answer_chars", "characters in the answer", higher_is_better=False, gate=False)
        return [ExtraMetric(("meqsum",), length, lambda sample, generation: len(generation.text))]

    def pytest_clue_case_result(config, case):  # case: clue.records.CaseRow
        print(case.task, case.case, case.record.verdict, case.metrics[case.record.primary_metric].value)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy
import pytest

if TYPE_CHECKING:
    from clue.metrics.extra import ExtraMetric
    from clue.records import CaseRow
    from clue.run.gate import GateOutcome

hookspec = pluggy.HookspecMarker("pytest")


@hookspec
def pytest_clue_metrics(config: pytest.Config) -> list[ExtraMetric]:
    """Extra per-sample metrics for existing tasks (each names its tasks); gated like a task's own when their
    MetricSpec says gate=True. Called once, when clue's session is configured."""
    raise NotImplementedError


@hookspec(firstresult=True)
def pytest_clue_headline(outcome: GateOutcome, headline: str) -> str | None:
    """The first line of a gated case's failure or warning message (and of its annotation): return a replacement,
    or None to keep `headline`."""
    raise NotImplementedError


@hookspec
def pytest_clue_case_result(config: pytest.Config, case: CaseRow) -> None:
    """A case finished (on the xdist controller too): its row (clue.records.CaseRow): task, case id, pytest's
    outcome, the path of its results JSON, and its record without the per-sample rows (model, base, verdict,
    headline, each metric's value and comparison)."""
