"""A case's contamination record: its model's probe scores against its base model's in this run, or against those
its stored baseline carries; with --clue-contamination-reference, the same for the reference items."""

from __future__ import annotations

from typing import Protocol

from clue import baseline
from clue.config import Settings
from clue.models.matrix import ModelSpec
from clue.records import BaselineProbes, ContaminationRecord
from clue.run.contamination.scores import ProbeScores, ReferenceSide, Scores, finding
from clue.statistics.contamination import ItemLogprobs

__all__ = ["Probed", "contamination_record"]


class Probed(Protocol):
    """What generating a task with a model left of the diagnostic (clue.run.generator.Generated has it)."""

    @property
    def probe_scores(self) -> ProbeScores | None: ...

    @property
    def reference_scores(self) -> ProbeScores | str | None: ...


def contamination_record(
    settings: Settings, case: ModelSpec, task: str, stored: baseline.Reference, mine: Probed, base: Probed | None
) -> ContaminationRecord | None:
    """The case's finding (None when --clue-contamination off). `mine`: its model's work on the task; `base`: its
    base model's in this run (None: the case is gated against the stored baseline `stored`)."""
    gate = settings.gate
    if gate.contamination == "off":
        return None
    if mine.probe_scores is None:
        return ContaminationRecord("not available", gate.contamination, reason="the model's probes were not scored")
    theirs = (
        _live_side(base.probe_scores, "probes")
        if base is not None
        else _stored_side(stored.contamination, mine.probe_scores, "probe scores")
    )
    return finding(
        mine.probe_scores,
        theirs,
        reference=_reference_side(settings, task, stored, mine, base),
        mode=gate.contamination,
        margin=gate.contamination_margin,
        item_threshold=gate.contamination_item_threshold,
        alpha=gate.alpha,
        resamples=gate.resamples,
        seed=gate.bootstrap_seed,
    )


def _reference_side(
    settings: Settings, task: str, stored: baseline.Reference, mine: Probed, base: Probed | None
) -> ReferenceSide | None:
    """The case's --clue-contamination-reference scores: its model's, and its base model's in this run or those its
    stored baseline carries (None: no file for the task)."""
    if task not in settings.gate.contamination_reference:
        return None
    unseen = mine.reference_scores
    if unseen is None or isinstance(unseen, str):
        return unseen or "the model's reference items were not scored"
    if base is not None:
        return unseen, _live_side(base.reference_scores, "reference items")
    return unseen, _stored_side(stored.contamination_reference, unseen, "scores of reference items")


def _live_side(base: ProbeScores | str | None, what: str) -> Scores | str:
    """The base model's scores in this run, by hashed id, or why there are none."""
    if base is None or isinstance(base, str):
        return base or f"the base model's {what} were not scored"
    return f"the base model: {base.unavailable}" if base.unavailable else base.hashed()


def _stored_side(stored: BaselineProbes | None, mine: ProbeScores, what: str) -> Scores | str:
    """A stored baseline's scores, by hashed id, or why they cannot be used."""
    if stored is None:
        return f"the stored baseline carries no {what} (saved by an earlier clue, or without them: save it again)"
    theirs, ours = dict(stored.settings), dict(mine.settings.as_dict())
    theirs.pop("items", None), ours.pop("items", None)  # items pair one by one: a baseline of 200 serves a run of 50
    if theirs != ours:
        return f"the stored baseline's {what} were made by another probe version ({theirs}; this run: {ours})"
    return {hid: (digest, ItemLogprobs(values[0], tuple(values[1:]))) for hid, (digest, values) in stored.items.items()}
