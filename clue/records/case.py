"""One case's results JSON: `CaseRecord`, with its `MetricEntry`s and `SampleRow`s."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import cast

from clue.errors import describe
from clue.records.contamination import ContaminationRecord
from clue.records.phrasings import PhrasingsSummary, WordingEntry
from clue.records.reading import (
    _CHOICES,
    JSON,
    SCHEMA_VERSION,
    CaseVerdict,
    Count,
    RecordError,
    _get,
    _list,
    _listed,
    _schema,
    _scores,
    comparison_from_json,
    name_in_message,
    stop_from_json,
)
from clue.statistics.paired import Comparison
from clue.statistics.sequential import Stop


@dataclass(frozen=True)
class MetricEntry:
    """One metric of a case: the model's mean with its CI, the metric's definition, the paired comparison if any."""

    value: float
    ci_low: float
    ci_high: float
    higher_is_better: bool
    kind: str
    gate: bool
    description: str
    fingerprint: Mapping[str, JSON] = field(default_factory=dict)
    comparison: Comparison | None = None

    def to_json(self) -> dict[str, JSON]:
        out: dict[str, JSON] = {
            "value": self.value,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "higher_is_better": self.higher_is_better,
            "kind": self.kind,
            "gate": self.gate,
            "description": self.description,
            "fingerprint": dict(self.fingerprint),
        }
        if self.comparison is not None:
            out["comparison"] = self.comparison.as_dict()
        return out

    @classmethod
    def from_json(cls, data: JSON, where: str) -> MetricEntry:
        return cls(
            value=_get(data, "value", float, where),
            ci_low=_get(data, "ci_low", float, where),
            ci_high=_get(data, "ci_high", float, where),
            higher_is_better=_get(data, "higher_is_better", bool, where),
            kind=_get(data, "kind", str, where),
            gate=bool(_get(data, "gate", bool, where, optional=True) is not False),
            description=_get(data, "description", str, where, optional=True) or "",
            fingerprint=_get(data, "fingerprint", dict, where, optional=True) or {},
            comparison=comparison_from_json(data.get("comparison"), f"{where}, comparison"),
        )


@dataclass(frozen=True)
class SampleRow:
    """One sample of a case: its (hashed) id, scores, flags and text-free details; its input, output and reference
    only where the record shows samples (`shown`: --clue-report-samples or a public data set)."""

    id: str
    scores: Mapping[str, float]
    parse_ok: bool
    flags: tuple[str, ...] = ()
    detail: JSON = None
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    truncated_tokens: int = 0
    reasoning: str | None = None
    error: str | None = None
    cluster: str | None = None
    shown: bool = False
    input: str | None = None
    output: str | None = None
    reference: JSON = None
    parsed: JSON = None

    def to_json(self) -> dict[str, JSON]:
        out: dict[str, JSON] = {
            "id": self.id,
            "scores": dict(self.scores),
            "parse_ok": self.parse_ok,
            "flags": list(self.flags),
            "detail": self.detail,
            "finish_reason": self.finish_reason,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "truncated_tokens": self.truncated_tokens,
            "reasoning": self.reasoning,
            "error": self.error,
        }
        if self.cluster is not None:
            out["cluster"] = self.cluster
        if self.shown:
            out["input"] = self.input
            out["output"] = self.output
            out["reference"] = self.reference
            if self.parsed is not None:
                out["parsed"] = self.parsed
        return out

    @classmethod
    def from_json(cls, data: JSON, where: str) -> SampleRow:
        _get(data, "scores", dict, where)
        return cls(
            id=_get(data, "id", str, where),
            scores=_scores(data, where),
            parse_ok=bool(_get(data, "parse_ok", bool, where)),
            flags=tuple(_get(data, "flags", list, where, optional=True) or ()),
            detail=data.get("detail"),
            finish_reason=_get(data, "finish_reason", str, where, optional=True),
            prompt_tokens=_get(data, "prompt_tokens", int, where, optional=True) or 0,
            completion_tokens=_get(data, "completion_tokens", int, where, optional=True) or 0,
            truncated_tokens=_get(data, "truncated_tokens", int, where, optional=True) or 0,
            reasoning=_get(data, "reasoning", str, where, optional=True),
            error=_get(data, "error", str, where, optional=True),
            cluster=_get(data, "cluster", str, where, optional=True),
            shown="input" in data or "output" in data,
            input=_get(data, "input", str, where, optional=True),
            output=_get(data, "output", str, where, optional=True),
            reference=data.get("reference"),
            parsed=data.get("parsed"),
        )

    def view(self) -> dict[str, JSON]:
        """What the report shows of the sample beside a flip: the keys that have a value."""
        values = {
            "flags": list(self.flags),
            "detail": self.detail,
            "output": self.output,
            "input": self.input,
            "reference": self.reference,
            "parsed": self.parsed,
            "error": self.error,
        }
        return {k: v for k, v in values.items() if v}


@dataclass(frozen=True)
class CaseRecord:
    """The results JSON of one case (task x model, and what it is compared with): the source of every report."""

    task: str
    task_title: str
    level: int
    model: str
    case: str
    verdict: CaseVerdict
    n: int
    metrics: Mapping[str, MetricEntry]
    primary_metric: str
    samples: tuple[SampleRow, ...] = ()
    base_model: str | None = None
    base_kind: str | None = None  # "model" (generated in this run) or "baseline" (stored)
    identical_outputs: Count | None = None
    few_shot_copies: Count | None = None  # None: the task has no shots, or its answers are a few labels
    floor_ceiling: str | None = None
    parse_failures: int = 0
    truncated_samples: int = 0
    failed_generations: int = 0
    confidence: float = 0.95
    sequential: Stop | None = None  # where --clue-sequential stopped the case
    generation_settings: Mapping[str, JSON] = field(default_factory=dict)
    provenance: Mapping[str, JSON] = field(default_factory=dict)
    samples_shown: bool = False
    weights_check: str | None = None  # "identical" | "differs" | "not checked"; None for a reference case
    headline: str | None = None  # the one-line verdict of a gated case
    contamination: ContaminationRecord | None = None  # None: not a gated case, or the diagnostic is off
    # under --clue-phrasings N > 1: the primary metric's comparison per wording and combined, and the summary
    phrasings: tuple[WordingEntry, ...] = ()
    phrasings_summary: PhrasingsSummary | None = None

    @property
    def row(self) -> str:
        """The report row: the case (the model, or "<model>-vs-<baseline>")."""
        return self.case or self.model

    def to_json(self) -> dict[str, JSON]:
        out: dict[str, JSON] = {
            "schema": SCHEMA_VERSION,
            "task": self.task,
            "task_title": self.task_title,
            "level": self.level,
            "model": self.model,
            "case": self.case,
            "base_model": self.base_model,
            "base_kind": self.base_kind,
            "verdict": self.verdict,
            "identical_outputs": self.identical_outputs.to_json() if self.identical_outputs else None,
            "n": self.n,
            "few_shot_copies": self.few_shot_copies.to_json() if self.few_shot_copies else None,
            "floor_ceiling": self.floor_ceiling,
            "parse_failures": self.parse_failures,
            "truncated_samples": self.truncated_samples,
            "failed_generations": self.failed_generations,
            "confidence": self.confidence,
            "sequential": self.sequential.as_dict() if self.sequential else None,
            "metrics": {name: m.to_json() for name, m in self.metrics.items()},
            "generation_settings": dict(self.generation_settings),
            "provenance": dict(self.provenance),
            "primary_metric": self.primary_metric,
            "samples_shown": self.samples_shown,
            "samples": [s.to_json() for s in self.samples],
            "weights_check": self.weights_check,
            "contamination": self.contamination.to_json() if self.contamination else None,
        }
        if self.headline is not None:
            out["headline"] = self.headline
        if self.phrasings_summary is not None:
            out["phrasings"] = [w.to_json() for w in self.phrasings]
            out["phrasings_summary"] = self.phrasings_summary.to_json()
        return out

    @classmethod
    def from_json(cls, data: JSON, where: str) -> CaseRecord:
        _schema(data, where)
        task, model = _get(data, "task", str, where), _get(data, "model", str, where)
        here = f"{where} ({name_in_message(task)}/{name_in_message(data.get('case') or model)})"
        metrics = _get(data, "metrics", dict, here)
        for key, allowed in _CHOICES.items():
            if data.get(key) not in allowed:
                raise RecordError(f"{here}: {key} is {describe(data.get(key))}, not one of {_listed(allowed)}")
        if data.get("primary_metric") not in metrics:
            raise RecordError(f"{here}: primary_metric names no metric of the record")
        for i, sample in enumerate(data.get("samples") or []):
            scores = sample.get("scores") if isinstance(sample, Mapping) else None
            if not isinstance(scores, Mapping) or set(metrics) - set(scores):
                raise RecordError(f"{here}, samples[{i}]: needs a score of every metric of the record")
        n = _get(data, "n", int, here)
        if n < 0:
            raise RecordError(f"{here}: n is {n}, not a count")
        return cls(
            task=task,
            task_title=_get(data, "task_title", str, here),
            level=_get(data, "level", int, here),
            model=model,
            case=_get(data, "case", str, here, optional=True) or model,
            verdict=cast(CaseVerdict, _get(data, "verdict", str, here)),  # checked against _CHOICES
            n=n,
            metrics={name: MetricEntry.from_json(m, f"{here}, metric {name}") for name, m in metrics.items()},
            primary_metric=_get(data, "primary_metric", str, here),
            samples=_list(data, "samples", here, SampleRow.from_json),
            base_model=_get(data, "base_model", str, here, optional=True),
            base_kind=_get(data, "base_kind", str, here, optional=True),
            identical_outputs=Count.from_json(data.get("identical_outputs"), f"{here}, identical_outputs"),
            few_shot_copies=Count.from_json(data.get("few_shot_copies"), f"{here}, few_shot_copies"),
            floor_ceiling=_get(data, "floor_ceiling", str, here, optional=True),
            parse_failures=_get(data, "parse_failures", int, here, optional=True) or 0,
            truncated_samples=_get(data, "truncated_samples", int, here, optional=True) or 0,
            failed_generations=_get(data, "failed_generations", int, here, optional=True) or 0,
            confidence=_get(data, "confidence", float, here, optional=True) or 0.95,
            sequential=stop_from_json(data.get("sequential"), f"{here}, sequential"),
            generation_settings=_get(data, "generation_settings", dict, here, optional=True) or {},
            provenance=_get(data, "provenance", dict, here, optional=True) or {},
            samples_shown=bool(_get(data, "samples_shown", bool, here, optional=True)),
            weights_check=_get(data, "weights_check", str, here, optional=True),
            headline=_get(data, "headline", str, here, optional=True),
            contamination=ContaminationRecord.from_json(data.get("contamination"), f"{here}, contamination"),
            phrasings=_list(data, "phrasings", here, WordingEntry.from_json) if "phrasings" in data else (),
            phrasings_summary=None
            if data.get("phrasings_summary") is None
            else PhrasingsSummary.from_json(data["phrasings_summary"], f"{here}, phrasings_summary"),
        )

    def with_samples(self, samples: tuple[SampleRow, ...]) -> CaseRecord:
        return replace(self, samples=samples)
