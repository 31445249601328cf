"""Results JSON: one file per task x model, written as soon as the test finishes (nothing lost on a crash), and
`clue-results.json` merging this session's files at the end.

Sample text (inputs, outputs, references) and raw sample ids are not written unless --clue-report-samples is given
or the data set is public: credentialed data must not leak into CI artefacts. Model outputs are also kept apart
under `generations/`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from clue import stats
from clue.files import SHARED, atomic_write
from clue.gate import GateOutcome
from clue.pseudonyms import hash_id
from clue.report.flags import output_flags
from clue.tasks import get_task
from clue.tasks.base import Task, split_reasoning
from clue.types import Sample, TaskResult

SCHEMA_VERSION = 1


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
    sequential: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The results JSON of one case (task x model, and what it is compared with). Sample ids are hashed and no
    sample text is written unless `show_samples` (--clue-report-samples) or the task's data set is public.
    `case` is the test id ("<model>" or "<model>-vs-<baseline>"), the report's row."""
    task = get_task(result.task)
    show = show_samples or task.public_data
    metrics = _metric_entries(result, outcome, alpha=alpha, resamples=resamples, seed=seed)
    rows = _sample_rows(task, result, samples, show)
    return {
        "schema": SCHEMA_VERSION,
        "task": result.task,
        "task_title": task.title,
        "level": task.level,
        "model": result.model,
        "case": case or result.model,
        "base_model": outcome.base if outcome else None,
        "base_kind": outcome.kind if outcome else None,  # "model" (generated in this run) or "baseline" (stored)
        "verdict": outcome.verdict if outcome else "reference",
        "identical_outputs": {"n": outcome.identical, "of": outcome.n} if outcome else None,
        "n": result.n,
        # outputs that repeat a few-shot answer (None: the task has no shots, or its answers are a few labels)
        "few_shot_copies": {"n": sum("copies_few_shot" in s.flags for s in result.samples), "of": result.n}
        if task.detects_shot_copies and task.n_shots
        else None,
        "floor_ceiling": outcome.floor_ceiling if outcome else None,
        "parse_failures": sum(not s.parse_ok for s in result.samples),
        "truncated_samples": sum(g.truncated_tokens > 0 for g in result.generations),
        "failed_generations": sum(g.error is not None for g in result.generations),
        "confidence": 1 - 2 * alpha,
        # the group-sequential gate's stop (--clue-sequential): look, samples used of available, boundary, level
        "sequential": sequential,
        "metrics": metrics,
        "generation_settings": dict(result.settings),
        "provenance": dict(result.provenance),
        "primary_metric": task.primary_metric,
        "samples_shown": show,
        "samples": rows,
    }


def _metric_entries(
    result: TaskResult, outcome: GateOutcome | None, *, alpha: float, resamples: int, seed: int
) -> dict[str, Any]:
    """Per metric: the model's mean with its CI, the metric's definition, and the paired comparison when gated."""
    comparisons = {c.metric: c for c in outcome.comparisons} if outcome else {}
    metrics: dict[str, Any] = {}
    for m in result.metrics:
        low, high = stats.mean_ci(result.values(m.name), alpha=alpha, resamples=resamples, seed=seed)
        entry: dict[str, Any] = {
            "value": result.aggregate(m.name),
            "ci_low": low,
            "ci_high": high,
            "higher_is_better": m.higher_is_better,
            "kind": m.kind,
            "gate": m.gate,
            "description": m.description,
            "fingerprint": dict(m.fingerprint),
        }
        if m.name in comparisons:
            entry["comparison"] = comparisons[m.name].as_dict()
        metrics[m.name] = entry
    return metrics


def _sample_rows(task: Task, result: TaskResult, samples: Sequence[Sample], show: bool) -> list[dict[str, Any]]:
    """Per sample: (hashed) id, scores, flags and text-free details; inputs, outputs and references when `show`."""
    rows = []
    for sample, score, generation in zip(samples, result.samples, result.generations, strict=True):
        detail = task.detail(sample, score)
        row: dict[str, Any] = {
            "id": sample.id if show else hash_id(result.task, sample.id),
            "scores": dict(score.scores),
            "parse_ok": score.parse_ok,
            "flags": output_flags(generation, score, detail),
            "detail": _jsonable(detail),
            "finish_reason": generation.finish_reason,
            "prompt_tokens": generation.prompt_tokens,
            "completion_tokens": generation.completion_tokens,
            "truncated_tokens": generation.truncated_tokens,
            "reasoning": split_reasoning(generation.text)[1],  # "stripped" / "unclosed" / None
            "error": generation.error
            if show or not generation.error
            else generation.error.replace(sample.id, hash_id(result.task, sample.id)),
        }
        if score.cluster is not None:
            row["cluster"] = score.cluster if show else hash_id(result.task, score.cluster)
        if show:
            row["input"] = task.render_user(sample)
            row["output"] = generation.text
            row["reference"] = _jsonable(sample.reference)
            if score.parsed is not None and not isinstance(score.parsed, str):
                row["parsed"] = _jsonable(score.parsed)
        rows.append(row)
    return rows


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def write_json(path: Path, data: Any) -> Path:
    """Atomic write, readable by CI artefact uploaders (results hold hashed ids and scores only)."""
    payload = json.dumps(data, indent=1, ensure_ascii=False, allow_nan=False).encode()
    return atomic_write(path, payload, SHARED)


def result_path(reports_dir: Path, task: str, case: str, suffix: str = "") -> Path:
    return reports_dir / "results" / task / f"{case}{suffix}.json"


def merge(
    reports_dir: Path,
    paths: Iterable[Path],
    *,
    not_run: Sequence[Mapping[str, str]] = (),
    strict: bool = False,
    interrupted: bool = False,
) -> list[dict[str, Any]]:
    """Merge this session's per-test files into clue-results.json, with the cases of this run that produced no
    result (skipped: no data; errored: invalid data, a failed model load, a systematic failure) and their
    reasons; returns the records. The file describes this run only."""
    records = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(set(paths)) if p.is_file()]
    data = {
        "schema": SCHEMA_VERSION,
        "results": records,
        "not_run": list(not_run),
        "strict": strict,
        "interrupted": interrupted,
    }
    write_json(reports_dir / "clue-results.json", data)
    return records
