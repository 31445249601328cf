"""One case's typed record (`CaseRecord`), built from its scored result and the gate's outcome: the per-sample rows
(ids hashed and text left out unless --clue-report-samples is given or the data set is public), the metric entries
with their comparisons, the stop of a sequential case. `clue.report` only reads and renders such records."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from clue.records import (
    CaseRecord,
    ContaminationRecord,
    Count,
    MetricEntry,
    PhrasingsSummary,
    SampleRow,
    WordingEntry,
)
from clue.report.flags import output_flags
from clue.run.gate import GateOutcome
from clue.statistics import paired as stats
from clue.statistics.phrasings import COMBINED
from clue.statistics.sequential import Stop
from clue.tasks import get_task
from clue.tasks.base import Task, split_reasoning
from clue.types import Sample, TaskResult
from clue.util.pseudonyms import hash_id, shareable_error


def result_record(
    result: TaskResult,
    outcome: GateOutcome | None,
    *,
    samples: Sequence[Sample],
    show_samples: bool,
    alpha: float,
    resamples: int,
    seed: int,
    case: str | None = None,
    sequential: Stop | None = None,
    weights_check: str | None = None,
    headline: str | None = None,
    task: Task | None = None,
    contamination: ContaminationRecord | None = None,
) -> CaseRecord:
    """The results JSON of one case (task x model, and what it is compared with). Sample ids are hashed and no
    sample text is written unless `show_samples` (--clue-report-samples) or the task's data set is public.
    `case` is the test id ("<model>" or "<model>-vs-<baseline>"), the report's row; `task` the run's instance (the
    registry's when not given)."""
    task = task or get_task(result.task)
    show = show_samples or task.public_data
    copies = sum("copies_few_shot" in s.flags for s in result.samples)
    return CaseRecord(
        task=result.task,
        task_title=task.title,
        level=task.level,
        model=result.model,
        case=case or result.model,
        base_model=outcome.base if outcome else None,
        base_kind=outcome.kind if outcome else None,
        verdict=outcome.verdict if outcome else "reference",
        identical_outputs=Count(outcome.identical, outcome.n) if outcome else None,
        n=result.n,
        few_shot_copies=Count(copies, result.n) if task.detects_shot_copies and task.n_shots else None,
        floor_ceiling=outcome.floor_ceiling if outcome else None,
        parse_failures=sum(not s.parse_ok for s in result.samples),
        truncated_samples=sum(g.truncated_tokens > 0 for g in result.generations),
        failed_generations=sum(g.error is not None for g in result.generations),
        confidence=1 - 2 * alpha,
        sequential=sequential,
        metrics=_metric_entries(result, outcome, alpha=alpha, resamples=resamples, seed=seed),
        generation_settings=dict(result.settings),
        provenance=dict(result.provenance),
        primary_metric=task.primary_metric,
        samples_shown=show,
        samples=tuple(_sample_rows(task, result, samples, show)),
        weights_check=weights_check,
        headline=headline,
        contamination=contamination,
        phrasings=_wording_entries(outcome),
        phrasings_summary=_phrasings_summary(outcome),
    )


def _wording_entries(outcome: GateOutcome | None) -> tuple[WordingEntry, ...]:
    """Under --clue-phrasings: the primary metric's comparison under each wording (the reference first) and the
    combined one."""
    if outcome is None or outcome.phrasings is None:
        return ()
    phrased = outcome.phrasings
    decision = phrased.decision
    primary = next(c for c in decision.reference if c.metric == decision.combined.metric)
    compared = [primary, *(c for _, c in decision.wordings)]
    entries = [WordingEntry(w.id, w.digest, w.source, c) for w, c in zip(phrased.wordings, compared, strict=True)]
    return (*entries, WordingEntry(COMBINED, None, "mean over the wordings", decision.combined))


def _phrasings_summary(outcome: GateOutcome | None) -> PhrasingsSummary | None:
    if outcome is None or outcome.phrasings is None:
        return None
    decision, sense = outcome.phrasings.decision, outcome.phrasings.decision.sensitivity
    return PhrasingsSummary(
        decision.combined.metric,
        decision.verdict,
        outcome.phrasings.reference_verdict,
        sense.model_spread,
        sense.base_spread,
        sense.ci_low,
        sense.ci_high,
        sense.finding,
    )


def _metric_entries(
    result: TaskResult, outcome: GateOutcome | None, *, alpha: float, resamples: int, seed: int
) -> dict[str, MetricEntry]:
    """Per metric: the model's mean with its CI, the metric's definition, and the paired comparison when gated."""
    comparisons = {c.metric: c for c in outcome.comparisons} if outcome else {}
    metrics: dict[str, MetricEntry] = {}
    for m in result.metrics:
        low, high = stats.mean_ci(result.values(m.name), alpha=alpha, resamples=resamples, seed=seed)
        metrics[m.name] = MetricEntry(
            value=result.aggregate(m.name),
            ci_low=low,
            ci_high=high,
            higher_is_better=m.higher_is_better,
            kind=m.kind,
            gate=m.gate,
            description=m.description,
            fingerprint=dict(m.fingerprint),
            comparison=comparisons.get(m.name),
        )
    return metrics


def _sample_rows(task: Task, result: TaskResult, samples: Sequence[Sample], show: bool) -> list[SampleRow]:
    """Per sample: (hashed) id, scores, flags and text-free details; inputs, outputs and references when `show`."""
    rows = []
    for sample, score, generation in zip(samples, result.samples, result.generations, strict=True):
        detail = task.detail(sample, score)
        hidden = hash_id(result.task, sample.id)
        error = generation.error
        parsed = score.parsed if show and score.parsed is not None and not isinstance(score.parsed, str) else None
        rows.append(
            SampleRow(
                id=sample.id if show else hidden,
                scores=dict(score.scores),
                parse_ok=score.parse_ok,
                flags=tuple(output_flags(generation, score, detail)),
                detail=_jsonable(detail),
                finish_reason=generation.finish_reason,
                prompt_tokens=generation.prompt_tokens,
                completion_tokens=generation.completion_tokens,
                truncated_tokens=generation.truncated_tokens,
                reasoning=split_reasoning(generation.text)[1],  # "stripped" / "unclosed" / None
                error=error if show or not error else shareable_error(error.replace(sample.id, hidden)),
                cluster=None
                if score.cluster is None
                else score.cluster
                if show
                else hash_id(result.task, score.cluster),
                shown=show,
                input=task.render_user(sample) if show else None,
                output=generation.text if show else None,
                reference=_jsonable(sample.reference) if show else None,
                parsed=_jsonable(parsed),
            )
        )
    return rows


def _shown_cluster(task: str, cluster: str | None, show: bool) -> str | None:
    if cluster is None:
        return None
    return cluster if show else hash_id(task, cluster)


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value
