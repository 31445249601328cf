"""References: what a case compares its model's result with (its base model's result from this run, or a stored
baseline's scores, refused when the baseline measured something else), this run's baseline entries, and the weights
check (a model whose next-token logits are its reference's)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

from clue import baseline
from clue.errors import ClueError
from clue.models.matrix import ModelSpec
from clue.records import BaselineEntry
from clue.run.catalog import DataCatalog
from clue.run.contamination import ProbeScores
from clue.run.plan import CasePlan
from clue.types import TaskResult
from clue.util.pseudonyms import hash_id

PROBE_COUNT = 3  # the weights probe's fixed prompts (clue.run.generator records the probes)


class References:
    def __init__(
        self,
        plan: CasePlan,
        catalog: DataCatalog,
        result_of: Callable[[str, str], TaskResult],
        probes: dict[str, str],
        probe_scores: Mapping[tuple[str, str], ProbeScores],
        reference_scores: Mapping[tuple[str, str], ProbeScores | str],
    ):
        self.plan = plan
        self.catalog = catalog
        self.result_of = result_of  # (model, task) -> its result in this run: a live base's
        self.probes = probes  # model -> its weights probe (filled while models generate)
        self.probe_scores = probe_scores  # (model, task) -> its contamination probe scores (filled likewise)
        self.reference_scores = reference_scores  # likewise, of the --clue-contamination-reference items

    def baseline_entry(self, result: TaskResult) -> BaselineEntry:
        """This run's baseline entry for a result: what --clue-save-baseline writes and a stored one must match."""
        task = self.catalog.task(result.task)
        data = self.catalog.data(task)
        assert data is not None  # the result exists, so the data did
        protocol = {**task.protocol(), "few_shot_ids": [hash_id(task.name, s.id) for s in data.shots]}
        entry = baseline.entry(result, protocol=protocol, prompts=self.catalog.prompt_hashes(result.task))
        scores = self.probe_scores.get((result.model, result.task))
        unseen = self.reference_scores.get((result.model, result.task))
        return replace(
            entry,
            contamination=scores.for_baseline() if scores else None,
            contamination_reference=unseen.for_baseline() if isinstance(unseen, ProbeScores) else None,
        )

    def reference(self, case: ModelSpec, result: TaskResult) -> baseline.Reference | None:
        """What this case compares `result` with: its base model's result (generated in this run) or a stored
        baseline's scores, refused (ClueError naming every difference) when the baseline measured something else.
        None for a reference case."""
        if case.base:
            reference = baseline.Reference.from_result(self.result_of(case.base, result.task))
            return reference.restrict([s.sample_id for s in result.samples])
        if not case.baselines:
            return None
        files = self.plan.baseline_files
        ref = baseline.resolve_ref(case.baselines[0], None, files)
        stored = files[ref.path].entry(result.task, ref.model)
        if stored is None:
            raise ClueError(
                f"baseline {ref.path} holds no {result.task} scores for {ref.model!r} (it was saved from a run "
                "without this task; save it again with this task selected)"
            )
        current = self.baseline_entry(result)
        problems = baseline.differences(stored, current)
        if problems:
            raise ClueError(
                f"baseline {ref.path} ({ref.model!r}) does not match this run of {result.task}, so its scores "
                "cannot be compared with this model's:\n  - "
                + "\n  - ".join(problems)
                + "\nSave the baseline again with this clue, data and settings (docs/ci.md: refreshing a baseline)"
            )
        return baseline.reference(stored, current, ref.label, [s.sample_id for s in result.samples])

    def weights_check(self, case: ModelSpec, reference: baseline.Reference | None) -> tuple[str, str | None]:
        """Whether the case's model computes its reference's function (equal weights probes): "identical" with the
        failure message (the adapter or the new weights were not applied), "differs", or "not checked" when either
        probe is unknown (an engine without one, a baseline saved before probes, nothing loaded and none stored)."""
        mine = self.probes.get(case.name)
        theirs = self.probes.get(case.base) if case.base else (reference.probe if reference else None)
        if mine is None or theirs is None:
            return "not checked", None
        if mine != theirs:
            return "differs", None
        what = f"base {case.base!r}" if case.base else f"baseline {reference.label if reference else ''!r}"
        return "identical", (
            f"model {case.name!r} computes the same next-token logits as {what} on {PROBE_COUNT} fixed probe "
            "prompts, bit for bit: the adapter or the new weights change nothing (an untrained adapter, or the "
            "base's weights given twice)"
        )
