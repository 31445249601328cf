"""A run's parts, wired together: the case plan, the data catalog, the generator (backends through the store),
the scorer and the references. Both front ends (the pytest plugin and `clue.evaluate`) drive a run through this
one object; docs/architecture.md follows a case through it.

Generation is planned from the *selected* items (after -k / -m deselection): the first time a model's outputs are
needed, all of that model's selected tasks are generated in one go, so each model is loaded once per session
and then released before the next one is loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from clue import baseline
from clue.config import Settings
from clue.metrics.extra import ExtraMetric
from clue.models.matrix import ModelSpec
from clue.records import BaselineEntry, BaselineProbes, ContaminationRecord, RunStats
from clue.run.catalog import DataCatalog, TaskData
from clue.run.contamination import ProbeScores, ReferenceSide, Scores, finding
from clue.run.gate import sequential_look
from clue.run.generator import Generator, Progress
from clue.run.plan import CasePlan
from clue.run.references import References
from clue.run.scoring import Scoring
from clue.statistics import sequential
from clue.statistics.contamination import ItemLogprobs
from clue.store.sqlite import GenerationStore
from clue.tasks.base import Task
from clue.types import Generation, TaskResult

__all__ = ["ClueSession", "TaskData"]


class ClueSession:
    """One run: what it evaluates (`plan`), on which data (`catalog`), generating (`generator`), scoring
    (`scoring`) and comparing (`references`). The methods below are the front ends' whole interface to it."""

    def __init__(self, settings: Settings, extra_metrics: Sequence[ExtraMetric] = ()):
        self.settings = settings
        self.plan = CasePlan(settings)
        self.catalog = DataCatalog(settings)
        self.scoring = Scoring(settings, self.catalog, extra_metrics)
        self.generator = Generator(settings, self.plan, self.catalog, self.scoring, self._sequential_look)
        self.references = References(
            self.plan,
            self.catalog,
            self.result,
            self.generator.probes,
            self.generator.probing.probe_scores,
            self.generator.probing.reference_scores,
        )

    # -- what the run evaluates -----------------------------------------------------------------------------------
    @property
    def models(self) -> dict[str, ModelSpec]:
        return self.plan.models

    @property
    def cases(self) -> dict[str, ModelSpec]:
        return self.plan.cases

    def check_models(self) -> None:
        self.plan.check_models()

    def need(self, case: ModelSpec, task: str) -> None:
        self.plan.need(case, task)

    @property
    def planned(self) -> bool:
        """Whether any selected test needs a model's outputs."""
        return bool(self.plan.tasks)

    # -- data -------------------------------------------------------------------------------------------------------
    def task(self, name: str) -> Task:
        return self.catalog.task(name)

    def data(self, task: Task) -> TaskData | None:
        return self.catalog.data(task)

    def data_path(self, task: Task) -> Path | None:
        return self.catalog.data_path(task)

    def missing_data_reason(self, task: Task) -> str:
        return self.catalog.missing_data_reason(task)

    # -- generations, results, references -----------------------------------------------------------------------------
    @property
    def progress(self) -> Progress | None:
        return self.generator.progress

    @progress.setter
    def progress(self, progress: Progress | None) -> None:
        self.generator.progress = progress

    @property
    def store(self) -> GenerationStore:
        return self.generator.store

    def generations(self, model: str, task_name: str) -> tuple[Generation, ...]:
        return self.generator.generations(model, task_name)

    def result(self, model: str, task_name: str) -> TaskResult:
        """The model's scored result on the task (generated first if need be; kept once scored)."""
        key = (model, task_name)
        if key not in self.scoring.results:
            task = self.catalog.task(task_name)
            generated = self.generator.generated(model, task_name)
            if generated.scored is not None:  # a sequential task, scored look by look as it was generated
                return generated.scored
            data = self.catalog.data(task)
            assert data is not None  # generated() would have raised
            provenance = self.generator.provenance_of(model, data)
            self.scoring.score_result(model, task, data, generated.generations, self.store, provenance)
        return self.scoring.results[key]

    def stop(self, case: ModelSpec, task: str) -> sequential.Stop | None:
        """Where the case's sequential gate stopped on the task (None: not sequential, or it never looked): part of
        what generating the case's model on the task returned."""
        return self.generator.generated(case.name, task).stops.get(case.case)

    def _sequential_look(
        self, case: ModelSpec, result: TaskResult, plan: sequential.Plan, index: int
    ) -> sequential.Look:
        """A sequential case's look at its model's samples scored so far, against its reference (the generator
        calls it after each chunk; ClueError when no comparison can be made yet)."""
        reference = self.references.reference(case, result)
        assert reference is not None  # only gated cases are sequential
        return sequential_look(result, reference, self.settings, plan, index)

    def contamination(self, case: ModelSpec, task: str, reference: baseline.Reference) -> ContaminationRecord | None:
        """The case's contamination diagnostic (None when --clue-contamination off): its model's probe scores
        against its base model's in this run, or against those its stored baseline carries."""
        gate = self.settings.gate
        if gate.contamination == "off":
            return None
        mine = self.generator.probing.probe_scores.get((case.name, task))
        if mine is None:
            return ContaminationRecord("not available", gate.contamination, reason="the model's probes were not scored")
        theirs = (
            _live_side(self.generator.probing.probe_scores.get((case.base, task)), "probes")
            if case.base
            else _stored_side(reference.contamination, mine, "probe scores")
        )
        return finding(
            mine,
            theirs,
            reference=self._reference_side(case, task, reference),
            mode=gate.contamination,
            margin=gate.contamination_margin,
            item_threshold=gate.contamination_item_threshold,
            alpha=gate.alpha,
            resamples=gate.resamples,
            seed=gate.bootstrap_seed,
        )

    def _reference_side(self, case: ModelSpec, task: str, reference: baseline.Reference) -> ReferenceSide | None:
        """The case's --clue-contamination-reference scores: its model's, and its base model's in this run or
        those its stored baseline carries (None: no file for the task)."""
        if task not in self.settings.gate.contamination_reference:
            return None
        mine = self.generator.probing.reference_scores.get((case.name, task))
        if mine is None or isinstance(mine, str):
            return mine or "the model's reference items were not scored"
        if case.base:
            return mine, _live_side(self.generator.probing.reference_scores.get((case.base, task)), "reference items")
        return mine, _stored_side(reference.contamination_reference, mine, "scores of reference items")

    def reference(self, case: ModelSpec, result: TaskResult) -> baseline.Reference | None:
        return self.references.reference(case, result)

    def baseline_entry(self, result: TaskResult) -> BaselineEntry:
        return self.references.baseline_entry(result)

    def weights_check(self, case: ModelSpec, reference: baseline.Reference | None) -> tuple[str, str | None]:
        return self.references.weights_check(case, reference)

    # -- the run's bookkeeping ---------------------------------------------------------------------------------------
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


def _live_side(base: ProbeScores | str | None, what: str) -> Scores | str:
    """The base model's scores in this run, by hashed id, or why there are none."""
    if base is None or isinstance(base, str):
        return base or f"the base model's {what} were not scored"
    return f"the base model: {base.unavailable}" if base.unavailable else base.hashed()


def _stored_side(stored: BaselineProbes | None, mine: ProbeScores, what: str) -> Scores | str:
    """A stored baseline's scores, by hashed id, or why they cannot be used."""
    if stored is None:
        return f"the stored baseline carries no {what} (saved by an earlier clue, or without them: save it again)"
    if dict(stored.settings) != dict(mine.settings.as_dict()):
        return f"the stored baseline's {what} were made with other settings (--clue-contamination-items?)"
    return {hid: (digest, ItemLogprobs(values[0], tuple(values[1:]))) for hid, (digest, values) in stored.items.items()}
