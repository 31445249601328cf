"""References: what a case compares its model's result with (its base model's result from this run, or a stored
baseline's scores, refused when the baseline measured something else), this run's baseline entries, and the weights
check (a model whose next-token logits are its reference's)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from clue import baseline
from clue.baseline import BaselineRef
from clue.errors import ClueError
from clue.models.matrix import ModelSpec
from clue.records import BaselineEntry
from clue.run.catalog import DataCatalog
from clue.run.contamination.scores import ProbeScores
from clue.run.plan import CasePlan
from clue.tasks.wordings import Wording
from clue.types import TaskResult
from clue.util.pseudonyms import hash_id

PROBE_COUNT = 3  # the weights probe's fixed prompts (clue.run.generator records the probes)


class References:
    """What a case is compared with. It knows the plan (the stored baselines) and the data, nothing of the
    generator: what generating produced (a base model's result, the weights probes, the probe scores) is handed to
    each method."""

    def __init__(self, plan: CasePlan, catalog: DataCatalog):
        self.plan = plan
        self.catalog = catalog

    def baseline_entry(
        self,
        result: TaskResult,
        probe_scores: ProbeScores | None = None,
        reference_scores: ProbeScores | str | None = None,
        worded: Sequence[tuple[Wording, TaskResult]] = (),
    ) -> BaselineEntry:
        """This run's baseline entry for a result: what --clue-save-baseline writes (with the model's contamination
        probe scores and its results under alternative wordings, when given) and a stored one must match."""
        task = self.catalog.task(result.task)
        data = self.catalog.data(task)
        assert data is not None  # the result exists, so the data did
        protocol = {**task.protocol(), "few_shot_ids": [hash_id(task.name, s.id) for s in data.shots]}
        entry = baseline.entry(
            result,
            protocol=protocol,
            prompts=self.catalog.prompt_hashes(result.task),
            worded=[(wording.id, wording.digest, scored) for wording, scored in worded],
        )
        return replace(
            entry,
            contamination=probe_scores.for_baseline() if probe_scores else None,
            contamination_reference=(
                reference_scores.for_baseline() if isinstance(reference_scores, ProbeScores) else None
            ),
        )

    def reference(self, case: ModelSpec, result: TaskResult, base: TaskResult | None) -> baseline.Reference | None:
        """What this case compares `result` with: its base model's result in this run (`base`, for a case with a
        base) or a stored baseline's scores, refused (ClueError naming every difference) when the baseline measured
        something else. None for a reference case."""
        if case.base:
            assert base is not None and base.model == case.base, "a case with a base is compared with its result"
            return baseline.Reference.from_result(base).restrict([s.sample_id for s in result.samples])
        if not case.baselines:
            return None
        ref, stored, current = self._stored(case, result)
        return baseline.reference(stored, current, ref.label, [s.sample_id for s in result.samples])

    def worded(self, case: ModelSpec, result: TaskResult, wordings: Sequence[Wording]) -> list[baseline.Reference]:
        """The stored baseline's scores under each alternative wording (--clue-phrasings), of `result`'s samples;
        ClueError when the baseline holds none under a wording's id and text. The entry is found and checked once."""
        ref, stored, current = self._stored(case, result)
        ids = [s.sample_id for s in result.samples]
        return [baseline.worded_reference(stored, w.id, w.digest, ref.label, current, ids) for w in wordings]

    def _stored(self, case: ModelSpec, result: TaskResult) -> tuple[BaselineRef, BaselineEntry, BaselineEntry]:
        """The case's stored baseline entry for the result's task and this run's entry, checked to measure the
        same thing."""
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
        return ref, stored, current

    def weights_check(
        self, case: ModelSpec, reference: baseline.Reference | None, mine: str | None, base: str | None
    ) -> tuple[str, str | None]:
        """Whether the case's model computes its reference's function (equal weights probes: `mine`, and `base`, its
        base model's in this run, or its stored baseline's): "identical" with the failure message (the adapter or
        the new weights were not applied), "differs", or "not checked" when either probe is unknown (an engine
        without one, a baseline saved before probes, nothing loaded and none stored)."""
        theirs = base if case.base else (reference.probe if reference else None)
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
