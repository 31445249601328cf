"""A run's parts, wired together: the case plan, the data catalog, the scorer, the references and the generator
(backends through the store). Both front ends (the pytest plugin and `clue.evaluate`) drive a run through this one
object's parts; docs/architecture.md follows a case through them.

The wiring has no circle: the references know the plan and the data; the generator knows the plan, the data, the
scorer and one look function built here from the references and the gate (a sequential case's look, handed its base
model's result by the generator). What generating produced (generations, stops, weights probes, probe scores) is
returned in `Generated` and handed on by whoever reads it.

Generation is planned from the *selected* items (after -k / -m deselection): the first time a model's outputs are
needed, all of that model's selected tasks are generated in one go, so each model is loaded once per session
and then released before the next one is loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from clue.config import Settings
from clue.metrics.extra import ExtraMetric
from clue.models.matrix import ModelSpec
from clue.records import RunStats
from clue.run.catalog import DataCatalog, TaskData
from clue.run.contamination.probing import check_references
from clue.run.gate import sequential_look
from clue.run.generator import Generator
from clue.run.plan import CasePlan
from clue.run.references import References
from clue.run.scoring import Scoring
from clue.statistics import sequential
from clue.types import TaskResult

__all__ = ["ClueSession", "TaskData"]


class ClueSession:
    """One run: what it evaluates (`plan`), on which data (`catalog`), scoring (`scoring`), comparing
    (`references`) and generating (`generator`). The front ends use the parts directly."""

    def __init__(self, settings: Settings, extra_metrics: Sequence[ExtraMetric] = ()):
        self.settings = settings
        self.plan = CasePlan(settings)
        self.catalog = DataCatalog(settings)
        self.scoring = Scoring(settings, self.catalog, extra_metrics)
        self.references = References(self.plan, self.catalog)
        look = partial(_look, self.references, settings)
        self.generator = Generator(settings, self.plan, self.catalog, self.scoring, look)
        check_references(settings, self.catalog)  # a named reference file that cannot serve: a usage error now

    def stats(self) -> RunStats:
        """What this process did: sent by xdist workers to the controller, merged there, written with the results."""
        done = self.generator.stats
        return RunStats(
            dict(done.loads),
            dict(done.reused),
            dict(done.generated),
            done.backend_seconds,
            self.scoring.seconds,
            contamination_s=sum(done.contamination_seconds.values()),
            contamination_task_s=dict(done.contamination_seconds),
        )

    def close(self) -> None:
        self.generator.close()


def _look(
    references: References,
    settings: Settings,
    case: ModelSpec,
    result: TaskResult,
    base: TaskResult | None,
    plan: sequential.Plan,
    index: int,
) -> sequential.Look:
    """A sequential case's look at its model's samples scored so far, against its reference (ClueError when no
    comparison can be made yet)."""
    reference = references.reference(case, result, base)
    assert reference is not None  # only gated cases are sequential
    return sequential_look(result, reference, settings, plan, index)
