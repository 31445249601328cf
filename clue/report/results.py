"""Results JSON: one file per task x model, written as soon as the test finishes (nothing lost on a crash), and
`clue-results.json` merging this session's files at the end.

Sample text (inputs, outputs) is not written here: credentialed data must not leak into CI artefacts. Model
outputs are kept apart under `generations/`.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from clue import stats
from clue.plugin.gate import GateOutcome
from clue.tasks import get_task
from clue.types import TaskResult

SCHEMA_VERSION = 1


def result_record(
    result: TaskResult, outcome: GateOutcome | None, *, alpha: float, resamples: int, seed: int
) -> dict[str, Any]:
    task = get_task(result.task)
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
    samples = [
        {
            "id": s.sample_id,
            "scores": dict(s.scores),
            "parse_ok": s.parse_ok,
            "finish_reason": g.finish_reason,
            "prompt_tokens": g.prompt_tokens,
            "completion_tokens": g.completion_tokens,
            "truncated_tokens": g.truncated_tokens,
            "error": g.error,
        }
        for s, g in zip(result.samples, result.generations, strict=True)
    ]
    return {
        "schema": SCHEMA_VERSION,
        "task": result.task,
        "task_title": task.title,
        "level": task.level,
        "model": result.model,
        "base_model": outcome.base if outcome else None,
        "verdict": outcome.verdict if outcome else "reference",
        "n": result.n,
        "parse_failures": sum(not s.parse_ok for s in result.samples),
        "truncated_samples": sum(g.truncated_tokens > 0 for g in result.generations),
        "failed_generations": sum(g.error is not None for g in result.generations),
        "confidence": 1 - 2 * alpha,
        "metrics": metrics,
        "generation_settings": dict(result.settings),
        "provenance": dict(result.provenance),
        "samples": samples,
    }


def write_json(path: Path, data: Any) -> Path:
    """Atomic write: a crash leaves the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, ensure_ascii=False, allow_nan=False)
    os.replace(tmp, path)
    return path


def result_path(reports_dir: Path, task: str, model: str) -> Path:
    return reports_dir / "results" / task / f"{model}.json"


def merge(reports_dir: Path, paths: Iterable[Path]) -> Path:
    records = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(set(paths)) if p.is_file()]
    return write_json(reports_dir / "clue-results.json", {"schema": SCHEMA_VERSION, "results": records})
