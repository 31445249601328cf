"""The contamination diagnostic in a run: each probed model's scores of the probes (clue/run/contamination/probes.py)
through the store, and a case's finding from its model's and its reference's scores (clue/statistics/contamination.py).

Scores are kept in the generation store's memo, keyed by the model's fingerprint (as generations are) and the
probe's digest, each written as soon as it exists: a re-run scores nothing, an interrupted one resumes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from clue.backends.base import Backend, scores_targets
from clue.errors import exception_text
from clue.records import BaselineProbes, ContaminationRecord, Count
from clue.run.contamination.probes import PROBE_VERSION, Probe, ProbeSettings
from clue.statistics.contamination import ItemLogprobs, against_reference, diagnose
from clue.store.fingerprint import memo_key
from clue.store.sqlite import GenerationStore, canonical
from clue.tasks.base import Task
from clue.types import ScoredTargets
from clue.util.pseudonyms import hash_id, shareable_error

__all__ = [
    "MIN_ITEMS",
    "ProbeScores",
    "ReferenceSide",
    "Scores",
    "finding",
    "not_scored",
    "probe_task",
    "score_probes",
]

MIN_ITEMS = 10  # fewer paired items give no interval worth reporting
Scores = Mapping[str, tuple[str, ItemLogprobs]]  # hashed id -> (probe digest, log-probabilities)
Pairs = list[tuple[ItemLogprobs, ItemLogprobs]]
# the reference items' scores: the candidate's and its base's (or why the base has none), or why there are none
ReferenceSide = tuple["ProbeScores", Scores | str] | str


@dataclass(frozen=True)
class ProbeScores:
    """One model's scores of one task's probes: per sample id, the probe's digest and its log-probabilities; or,
    when none could be had, why (`unavailable`: the engine gives no log-probabilities, or scoring failed)."""

    task: str
    items: Mapping[str, tuple[str, ItemLogprobs]]
    settings: ProbeSettings
    unavailable: str | None = None

    def hashed(self) -> dict[str, tuple[str, ItemLogprobs]]:
        """The items under their hashed ids (a stored baseline's base side)."""
        return {hash_id(self.task, sid): item for sid, item in self.items.items()}

    def for_baseline(self) -> BaselineProbes | None:
        """What a stored baseline carries for a later run's diagnostic: hashed ids, digests and numbers only."""
        if self.unavailable is not None:
            return None
        return BaselineProbes(
            dict(self.settings.as_dict()),
            {hid: (digest, (item.exact, *item.neighbours)) for hid, (digest, item) in self.hashed().items()},
        )


def not_scored(task: str, settings: ProbeSettings, why: str) -> ProbeScores:
    return ProbeScores(task, {}, settings, why)


def _key(fingerprint: Mapping[str, Any], probe: Probe) -> str:
    return memo_key({"contamination_probe": PROBE_VERSION, "model": canonical(fingerprint)}, probe.digest)


def _item(value: Any) -> ItemLogprobs | None:
    """A stored value as log-probabilities per token, or None when it is not one (recomputed)."""
    if not isinstance(value, list) or len(value) < 2:
        return None
    if not all(isinstance(v, list) and len(v) == 2 and v[1] > 0 for v in value):
        return None
    per_token = [float(v[0]) / int(v[1]) for v in value]
    return ItemLogprobs(per_token[0], tuple(per_token[1:]))


def score_probes(
    store: GenerationStore,
    fingerprint: Mapping[str, Any],
    backend: object,
    task: str,
    probes: Sequence[Probe],
    settings: ProbeSettings,
    *,
    desc: str,
) -> ProbeScores:
    """The model's scores of `probes`: stored ones reused, the rest computed by the backend (which loads its weights
    only if some are missing) and stored one by one. An engine without log-probabilities: `unavailable` says so."""
    keys = [_key(fingerprint, p) for p in probes]
    stored = store.memo_get(keys)
    items: dict[str, tuple[str, ItemLogprobs]] = {}
    missing: list[int] = []
    for i, (probe, key) in enumerate(zip(probes, keys, strict=True)):
        found = _item(stored.get(key))
        if found is None:
            missing.append(i)
        else:
            items[probe.sample_id] = (probe.digest, found)
    if missing:
        scorer = scores_targets(backend)
        if scorer is None:
            return not_scored(task, settings, f"{type(backend).__name__} gives no log-probabilities")
        if store.read_only:
            raise store.read_only_error(f"{len(missing)} contamination probe score(s) are not in it")
        errors: list[str] = []

        def keep(j: int, scored: ScoredTargets) -> None:
            probe = probes[missing[j]]
            if scored.error is not None or len(scored.scores) != len(probe.request.targets):
                errors.append(scored.error or "a target was not scored")
                return
            value = [[s.logprob, s.tokens] for s in scored.scores]
            store.memo_put({keys[missing[j]]: value})
            item = _item(value)
            assert item is not None
            items[probe.sample_id] = (probe.digest, item)

        scorer.score_targets([probes[i].request for i in missing], desc=desc, on_result=keep)
        if errors and len(items) < MIN_ITEMS:
            return not_scored(task, settings, f"scoring failed on {len(errors)} of {len(probes)} items: {errors[0]}")
    order = {p.sample_id: i for i, p in enumerate(probes)}
    return ProbeScores(task, dict(sorted(items.items(), key=lambda kv: order[kv[0]])), settings)


def probe_task(
    store: GenerationStore,
    backend: Backend,
    task: Task,
    build: Callable[[], list[Probe]],
    settings: ProbeSettings,
    desc: str,
    debug: bool,
) -> ProbeScores:
    """A model's scores of one task's probes (`build` makes them with the model's token counts); a failure here is
    the diagnostic's ("not available", with the reason, shareable for credentialed data), never the model's."""
    try:
        return score_probes(store, backend.fingerprint(store), backend, task.name, build(), settings, desc=desc)
    except Exception as exc:
        detail = exception_text(exc, debug=debug)
        return not_scored(
            task.name, settings, f"scoring the probes failed: {detail if task.public_data else shareable_error(detail)}"
        )


def _paired(candidate: ProbeScores, base: Scores) -> Pairs:
    """(candidate, base) scores of the items both sides scored on the same probe (by hashed id and digest)."""
    mine = candidate.hashed()
    return [(mine[h][1], base[h][1]) for h in mine if h in base and base[h][0] == mine[h][0]]


def _versus_reference(
    probed: Pairs, reference: ReferenceSide, *, alpha: float, resamples: int, seed: int
) -> dict[str, Any]:
    """The reference comparison's fields of the record: d on the probed items against d on the reference items,
    or `reference_reason`, why there is none."""
    if isinstance(reference, str):
        return {"reference_reason": reference}
    candidate, base = reference
    if candidate.unavailable is not None:
        return {"reference_reason": f"the model: {candidate.unavailable}"}
    if isinstance(base, str):
        return {"reference_reason": base}
    pairs = _paired(candidate, base)
    if len(pairs) < MIN_ITEMS:
        return {
            "reference_reason": f"{len(pairs)} reference items with an answer of several words scored on both "
            f"sides (needs {MIN_ITEMS})"
        }
    found = against_reference(
        ([c for c, _ in probed], [b for _, b in probed]),
        ([c for c, _ in pairs], [b for _, b in pairs]),
        alpha=alpha,
        resamples=resamples,
        seed=seed,
    )
    return {
        "reference_statistic": found.statistic,
        "reference_ci_low": found.ci_low,
        "reference_ci_high": found.ci_high,
        "reference_d": found.reference,
        "reference_items": found.n_reference,
    }


def finding(
    candidate: ProbeScores,
    base: Scores | str,
    *,
    mode: str,
    margin: float,
    item_threshold: float,
    alpha: float,
    resamples: int,
    seed: int,
    reference: ReferenceSide | None = None,
) -> ContaminationRecord:
    """The case's record: the statistic over the items both sides scored on the same probe (matched by hashed id
    and digest), or why there is none (`base` a string: the reference side's reason). With `reference` (the
    --clue-contamination-reference items' scores) the flag is the reference comparison's, when it can be made:
    the neighbour statistic alone flags a model that learnt the task (docs/contamination.md)."""
    if candidate.unavailable is not None:
        return ContaminationRecord("not available", mode, reason=f"the model: {candidate.unavailable}")
    if isinstance(base, str):
        return ContaminationRecord("not available", mode, reason=base)
    paired = _paired(candidate, base)
    if len(candidate.items) < MIN_ITEMS:
        return ContaminationRecord(
            "not applicable",
            mode,
            reason=f"the test file has {len(candidate.items)} items with a reference answer of several words to probe "
            f"(needs {MIN_ITEMS}): answers that are labels or letters have no neighbours",
        )
    if len(paired) < MIN_ITEMS:
        return ContaminationRecord(
            "not available",
            mode,
            reason=f"the base's scores match {len(paired)} of the model's {len(candidate.items)} probes (same item, "
            f"same probe text; needs {MIN_ITEMS}): a stored baseline saved from another data file or clue version "
            "cannot judge this run; save it again",
        )
    found = diagnose(
        [c for c, _ in paired],
        [b for _, b in paired],
        margin=margin,
        item_threshold=item_threshold,
        alpha=alpha,
        resamples=resamples,
        seed=seed,
    )
    versus = (
        _versus_reference(paired, reference, alpha=alpha, resamples=resamples, seed=seed)
        if reference is not None
        else {}
    )
    flagged = versus["reference_ci_low"] > 0 if "reference_ci_low" in versus else found.flagged
    return ContaminationRecord(
        "flagged" if flagged else "clear",
        mode,
        statistic=found.statistic,
        ci_low=found.ci_low,
        ci_high=found.ci_high,
        exact_gain=found.exact_gain,
        neighbour_gain=found.neighbour_gain,
        memorised=Count(found.memorised, found.n),
        margin=margin,
        item_threshold=item_threshold,
        neighbours=len(paired[0][0].neighbours),
        **versus,
    )
