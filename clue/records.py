"""The records that leave a run: typed and frozen, each with `to_json` (what the file or the xdist report carries)
and `from_json` (what every reader parses, refusing a malformed record by name). The results JSON of one case
(`CaseRecord`, with its `MetricEntry`s and `SampleRow`s), a selected case without a result (`NotRun`), the row the
summary, JUnit, the annotations and the `pytest_clue_case_result` hook get (`CaseRow`), and a stored baseline's
entry (`BaselineEntry`). The JSON shapes are those of schema version SCHEMA_VERSION (docs/ci.md)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal, TypeVar, cast, get_args

from clue.errors import ClueError, describe
from clue.statistics.paired import Comparison, Verdict
from clue.statistics.sequential import Stop

__all__ = [
    "JSON",
    "SCHEMA_VERSION",
    "VERDICTS",
    "BaselineEntry",
    "BaselineSample",
    "CaseRecord",
    "CaseRow",
    "CaseVerdict",
    "Count",
    "MetricEntry",
    "MetricRow",
    "NotRun",
    "RecordError",
    "RunRecord",
    "RunStats",
    "SampleRow",
    "comparison_from_json",
    "name_in_message",
    "stop_from_json",
]

SCHEMA_VERSION = 1

JSON = Any  # a value as json.loads gives it
VERDICTS: tuple[str, ...] = get_args(Verdict)
# a case's verdict: the gate's, or "reference" for a model that is only compared against
CaseVerdict = Literal["regressed", "inconclusive", "non-inferior", "improved", "reference"]
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
T = TypeVar("T")


class RecordError(ClueError):
    """A record that is not what its schema says (a results file edited by hand, written by another clue)."""


# what a results record's closed fields may hold: the report draws colours, marks and sections from them
_CHOICES: dict[str, tuple[object, ...]] = {
    "verdict": (*VERDICTS, "reference"),
    "base_kind": (None, "model", "baseline"),
    "weights_check": (None, "identical", "differs", "not checked"),
}


def _listed(allowed: tuple[object, ...]) -> str:
    return ", ".join("null" if a is None else str(a) for a in allowed)


def name_in_message(value: object) -> str:
    """A name read from a file (a task, a model, a hashed sample id) as a message may show it: as written when it is
    shaped like a name, else described (an edited file can hold any text there)."""
    if isinstance(value, str) and _NAME.fullmatch(value):
        return value
    return f"({describe(value)})"


def _get(
    data: Mapping[str, JSON], key: str, kind: type | tuple[type, ...], where: str, *, optional: bool = False
) -> Any:
    if not isinstance(data, Mapping):
        raise RecordError(f"{where}: not a JSON object")
    if key not in data or data[key] is None:
        if optional:
            return None
        raise RecordError(f"{where}: {key} is missing")
    value = data[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind in (int, float) and isinstance(value, bool)):
        raise RecordError(f"{where}: {key} is {describe(value)}, not {getattr(kind, '__name__', kind)}")
    return value


def _scores(data: Mapping[str, JSON], where: str) -> dict[str, float]:
    """A sample's scores table: every value a number."""
    scores = data["scores"]
    bad = [k for k, v in scores.items() if not isinstance(v, int | float) or isinstance(v, bool)]
    if bad:
        raise RecordError(f"{where}: score {name_in_message(bad[0])} is not a number")
    return {str(k): float(v) for k, v in scores.items()}


def _schema(data: JSON, where: str) -> None:
    schema = _get(data, "schema", int, where)
    if schema != SCHEMA_VERSION:
        raise RecordError(f"{where}: schema {schema}; this clue reads schema {SCHEMA_VERSION}")


def _list(data: Mapping[str, JSON], key: str, where: str, parse: Callable[[JSON, str], T]) -> tuple[T, ...]:
    items = _get(data, key, list, where)
    return tuple(parse(item, f"{where}, {key}[{i}]") for i, item in enumerate(items))


@dataclass(frozen=True)
class Count:
    """`n` of `of` samples (outputs identical to the base's, outputs copying a few-shot answer)."""

    n: int
    of: int

    def to_json(self) -> dict[str, int]:
        return {"n": self.n, "of": self.of}

    @classmethod
    def from_json(cls, data: JSON, where: str) -> Count | None:
        if data is None:
            return None
        return cls(_get(data, "n", int, where), _get(data, "of", int, where))


def stop_from_json(data: JSON, where: str) -> Stop | None:
    if data is None:
        return None
    return Stop(
        look=_get(data, "look", int, where),
        looks=_get(data, "looks_planned", int, where),
        units=_get(data, "units_used", int, where),
        units_available=_get(data, "units_available", int, where),
        samples=_get(data, "samples_used", int, where),
        samples_available=_get(data, "samples_available", int, where),
        level=_get(data, "nominal_alpha", float, where),
        boundary=_get(data, "boundary", str, where, optional=True),
    )


def comparison_from_json(data: JSON, where: str) -> Comparison | None:
    if data is None:
        return None
    if not isinstance(data, Mapping):
        raise RecordError(f"{where}: not a JSON object")
    kinds = {f.name: f.type for f in fields(Comparison)}
    given = {k: v for k, v in data.items() if k in kinds}
    for key, value in given.items():
        kind = str(kinds[key])
        if kind == "Verdict":
            ok = value in VERDICTS
        elif kind in ("float", "int"):
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            ok = ok and (kind == "float" or isinstance(value, int))
        else:
            ok = isinstance(value, {"str": str, "bool": bool}.get(kind, object))
        if not ok:
            raise RecordError(f"{where}: {key} is {describe(value)}, not {kind}")
    try:
        return Comparison(**given)
    except TypeError as exc:  # a field missing: the message names it
        raise RecordError(f"{where}: {exc}") from None


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


ContaminationStatus = Literal["clear", "flagged", "not available", "not applicable"]
_CONTAMINATION_NUMBERS = (
    "statistic",
    "ci_low",
    "ci_high",
    "exact_gain",
    "neighbour_gain",
    "margin",
    "item_threshold",
    "reference_statistic",
    "reference_ci_low",
    "reference_ci_high",
    "reference_d",
)


# what a flag without reference items cannot tell apart (docs/contamination.md, the validation)
UNREFERENCED_FLAG = (
    "without reference items a heavy fine-tune on text of this kind is flagged too: "
    "compare with unseen items (--clue-contamination-reference) before calling it contamination"
)


@dataclass(frozen=True)
class ContaminationRecord:
    """The contamination diagnostic of a gated case (clue/statistics/contamination.py): whether the model's gain
    over its reference looks like memorised test items. `mode` "report" never changes the verdict; "fail" fails a
    flagged case. Numbers are nats per token; `memorised`: items whose own statistic exceeds `item_threshold`.
    With --clue-contamination-reference: `reference_statistic` is d on the test items (`statistic`) minus d on
    `reference_items` unseen items (`reference_d`), which then decides the flag (lower end above 0); or
    `reference_reason` says why there is no comparison (the neighbour statistic's flag stands)."""

    status: ContaminationStatus
    mode: str
    reason: str | None = None
    statistic: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    exact_gain: float | None = None
    neighbour_gain: float | None = None
    memorised: Count | None = None
    margin: float | None = None
    item_threshold: float | None = None
    neighbours: int | None = None
    reference_statistic: float | None = None
    reference_ci_low: float | None = None
    reference_ci_high: float | None = None
    reference_d: float | None = None
    reference_items: int | None = None
    reference_reason: str | None = None

    @property
    def flagged(self) -> bool:
        return self.status == "flagged"

    @property
    def summary(self) -> str:
        """One line: the terminal's, the report's note, the JUnit property's. With a reference comparison it comes
        first (it decides the flag), the neighbour statistic after it."""
        if self.statistic is None or self.memorised is None:
            return f"contamination {self.status}: {self.reason}"
        share = self.memorised.n / self.memorised.of
        neighbours = (
            f"d = {self.statistic:+.3f} nats/token [{self.ci_low:+.3f}, {self.ci_high:+.3f}]"
            f"{'' if self.reference_statistic is not None else f' (flagged above {self.margin:g})'}; "
            f"{self.memorised.n} of {self.memorised.of} items look memorised ({share:.0%})"
        )
        if self.reference_statistic is not None:
            return (
                f"contamination {self.status}: d on the test items minus d on {self.reference_items} unseen "
                f"reference items = {self.reference_statistic:+.3f} [{self.reference_ci_low:+.3f}, "
                f"{self.reference_ci_high:+.3f}] (flagged above 0); against neighbours alone {neighbours}"
            )
        unmatched = f"; no reference comparison: {self.reference_reason}" if self.reference_reason else ""
        caveat = f"; {UNREFERENCED_FLAG}" if self.flagged else ""
        return f"contamination {self.status}: {neighbours}{unmatched}{caveat}"

    def to_json(self) -> dict[str, JSON]:
        out: dict[str, JSON] = {"status": self.status, "flagged": self.flagged, "mode": self.mode}
        if self.reason is not None:
            out["reason"] = self.reason
        out.update({k: getattr(self, k) for k in _CONTAMINATION_NUMBERS if getattr(self, k) is not None})
        if self.memorised is not None:
            out["memorised"] = self.memorised.to_json()
        if self.neighbours is not None:
            out["neighbours"] = self.neighbours
        if self.reference_items is not None:
            out["reference_items"] = self.reference_items
        if self.reference_reason is not None:
            out["reference_reason"] = self.reference_reason
        return out

    @classmethod
    def from_json(cls, data: JSON, where: str) -> ContaminationRecord | None:
        if data is None:
            return None
        status = _get(data, "status", str, where)
        if status not in get_args(ContaminationStatus):
            raise RecordError(
                f"{where}: status is {describe(status)}, not one of {_listed(get_args(ContaminationStatus))}"
            )
        numbers = {k: _get(data, k, float, where, optional=True) for k in _CONTAMINATION_NUMBERS}
        return cls(
            status=cast(ContaminationStatus, status),
            mode=_get(data, "mode", str, where),
            reason=_get(data, "reason", str, where, optional=True),
            memorised=Count.from_json(data.get("memorised"), f"{where}, memorised"),
            neighbours=_get(data, "neighbours", int, where, optional=True),
            reference_items=_get(data, "reference_items", int, where, optional=True),
            reference_reason=_get(data, "reference_reason", str, where, optional=True),
            **numbers,
        )


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
        )

    def with_samples(self, samples: tuple[SampleRow, ...]) -> CaseRecord:
        return replace(self, samples=samples)


@dataclass(frozen=True)
class NotRun:
    """A selected case without a result: skipped (no data) or error (invalid data, a failed model, a refused
    baseline), and why in one line."""

    task: str
    model: str  # the case id
    status: str  # "skipped" | "error" | "stopped" (the run was stopped before the case finished)
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"task": self.task, "model": self.model, "status": self.status, "reason": self.reason}

    @classmethod
    def from_json(cls, data: JSON, where: str) -> NotRun:
        return cls(*(_get(data, key, str, where) for key in ("task", "model", "status", "reason")))


@dataclass(frozen=True)
class MetricRow:
    """What the summary and the JUnit properties show of one metric: its value and, when compared, the comparison's
    figures."""

    value: float
    comparison: Comparison | None = None

    _SHOWN = ("base_mean", "delta", "ci_low", "ci_high", "p_regression", "margin", "mde", "regression_alpha")

    def to_json(self) -> dict[str, JSON]:
        out: dict[str, JSON] = {"value": self.value}
        if self.comparison is not None:
            out.update({key: getattr(self.comparison, key) for key in self._SHOWN})
            out["verdict"] = self.comparison.verdict
        return out


@dataclass(frozen=True)
class CaseRow:
    """A finished case as the summary, the JUnit properties, the annotations and `pytest_clue_case_result` see it.
    It travels from xdist workers to the controller on the test report, as `to_json`."""

    record: CaseRecord
    results_json: str
    diagnostics: tuple[str, ...] = ()
    outcome: str = ""  # pytest's: "passed" | "failed" (set on the controller)
    baseline_entry: str | None = None  # the file holding the case's --clue-save-baseline entry

    @property
    def task(self) -> str:
        return self.record.task

    @property
    def case(self) -> str:
        return self.record.row

    @property
    def metrics(self) -> dict[str, MetricRow]:
        return {name: MetricRow(m.value, m.comparison) for name, m in self.record.metrics.items()}

    def to_json(self) -> dict[str, JSON]:
        return {
            "record": self.record.to_json(),
            "results_json": self.results_json,
            "diagnostics": list(self.diagnostics),
            "outcome": self.outcome,
            "baseline_entry": self.baseline_entry,
        }

    @classmethod
    def from_json(cls, data: JSON, where: str) -> CaseRow:
        return cls(
            record=CaseRecord.from_json(_get(data, "record", dict, where), f"{where}, record"),
            results_json=_get(data, "results_json", str, where),
            diagnostics=tuple(_get(data, "diagnostics", list, where, optional=True) or ()),
            outcome=_get(data, "outcome", str, where, optional=True) or "",
            baseline_entry=_get(data, "baseline_entry", str, where, optional=True),
        )


Number = TypeVar("Number", int, float)


def _summed(maps: Iterable[Mapping[str, Number]]) -> dict[str, Number]:
    """Maps of counts or seconds (per model, per task) added key by key: what xdist workers did, together."""
    out: dict[str, Number] = {}
    for each in maps:
        for key, value in each.items():
            out[key] = out[key] + value if key in out else value
    return out


def _is_seconds(value: object) -> bool:
    """A duration as JSON gives it: a finite, non-negative number (not a bool, not NaN)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


@dataclass(frozen=True)
class RunStats:
    """What a run's processes did: model loads, generations reused from the store and generated, per model, and
    the time spent in backends and scoring (summed over xdist workers) and on the wall. Each xdist worker sends its
    own (`to_json` over the wire, `from_json` on the controller); `merged` sums them; clue-session.json holds it."""

    loads: Mapping[str, int] = field(default_factory=dict)
    reused: Mapping[str, int] = field(default_factory=dict)
    generated: Mapping[str, int] = field(default_factory=dict)
    backend_s: float = 0.0
    scoring_s: float = 0.0
    workers: int = 1
    wall_s: float = 0.0
    contamination_s: float = 0.0  # of backend_s: building and scoring the contamination diagnostic's probes
    contamination_task_s: Mapping[str, float] = field(default_factory=dict)  # contamination_s per task (its cost)

    def to_json(self) -> dict[str, JSON]:
        return {
            "loads": dict(self.loads),
            "reused": dict(self.reused),
            "generated": dict(self.generated),
            "backend_s": self.backend_s,
            "scoring_s": self.scoring_s,
            "workers": self.workers,
            "wall_s": self.wall_s,
            "contamination_s": self.contamination_s,
            "contamination_task_s": dict(self.contamination_task_s),
        }

    @classmethod
    def from_json(cls, data: JSON, where: str) -> RunStats:
        if not isinstance(data, dict):
            raise RecordError(f"{where}: run statistics are not an object")

        def counts(key: str) -> dict[str, int]:
            value = data.get(key, {})
            if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(n, int) and not isinstance(n, bool) for k, n in value.items()
            ):
                raise RecordError(f"{where}, {key}: not a map of model names to counts")
            return dict(value)

        def seconds(key: str) -> float:
            value = data.get(key, 0.0)
            if not _is_seconds(value):
                raise RecordError(f"{where}, {key}: not a number of seconds")
            return float(value)

        def per_task(key: str) -> dict[str, float]:
            value = data.get(key, {})
            if not isinstance(value, dict) or not all(isinstance(k, str) and _is_seconds(s) for k, s in value.items()):
                raise RecordError(f"{where}, {key}: not a map of task names to seconds")
            return {k: float(s) for k, s in value.items()}

        workers = data.get("workers", 1)
        if isinstance(workers, bool) or not isinstance(workers, int):
            raise RecordError(f"{where}, workers: not a count")
        return cls(
            counts("loads"), counts("reused"), counts("generated"), seconds("backend_s"), seconds("scoring_s"),
            workers, seconds("wall_s"), seconds("contamination_s"), per_task("contamination_task_s"),
        )  # fmt: skip

    @classmethod
    def merged(cls, parts: Sequence[RunStats], wall_s: float, workers: int = 1) -> RunStats:
        """Processes' statistics summed; `workers` says how many processes generated (the xdist controller's part
        is its own bookkeeping, not a worker), `wall_s` the session's time."""

        return cls(
            _summed(p.loads for p in parts), _summed(p.reused for p in parts), _summed(p.generated for p in parts),
            sum(p.backend_s for p in parts), sum(p.scoring_s for p in parts), workers, wall_s,
            sum(p.contamination_s for p in parts), _summed(p.contamination_task_s for p in parts),
        )  # fmt: skip


@dataclass(frozen=True)
class RunRecord:
    """clue-results.json: this run's case records, the selected cases without a result, and how the run ended."""

    results: tuple[CaseRecord, ...] = ()
    not_run: tuple[NotRun, ...] = ()
    strict: bool = False  # --clue-strict: inconclusive cases failed
    interrupted: bool = False  # Ctrl-C or SIGTERM before every selected case finished

    def to_json(self) -> dict[str, JSON]:
        return {
            "schema": SCHEMA_VERSION,
            "results": [r.to_json() for r in self.results],
            "not_run": [n.to_json() for n in self.not_run],
            "strict": self.strict,
            "interrupted": self.interrupted,
        }

    @classmethod
    def from_json(cls, data: JSON, where: str) -> RunRecord:
        _schema(data, where)
        return cls(
            results=_list(data, "results", where, CaseRecord.from_json),
            not_run=tuple(
                NotRun.from_json(n, f"{where}, not_run[{i}]") for i, n in enumerate(data.get("not_run") or [])
            ),
            strict=bool(_get(data, "strict", bool, where, optional=True)),
            interrupted=bool(_get(data, "interrupted", bool, where, optional=True)),
        )


@dataclass(frozen=True)
class BaselineSample:
    """One sample of a stored baseline: hashed ids and hashes only, never text."""

    id: str
    scores: Mapping[str, float]
    prompt: str | None = None  # hash of the prompt the task built
    output: str | None = None  # hash of the output (None: the generation failed)
    cluster: str | None = None

    def to_json(self) -> dict[str, JSON]:
        return {
            "id": self.id,
            "prompt": self.prompt,
            "output": self.output,
            "cluster": self.cluster,
            "scores": dict(self.scores),
        }

    @classmethod
    def from_json(cls, data: JSON, where: str) -> BaselineSample:
        if not isinstance(data, Mapping) or "id" not in data or not isinstance(data.get("scores"), Mapping):
            raise RecordError(f"{where}: every sample needs an id and a scores table")
        here = f"{where}, sample {name_in_message(data['id'])}"
        return cls(
            id=str(data["id"]),
            scores=_scores(data, here),
            prompt=_get(data, "prompt", str, here, optional=True),
            output=_get(data, "output", str, here, optional=True),
            cluster=_get(data, "cluster", str, here, optional=True),
        )


@dataclass(frozen=True)
class BaselineProbes:
    """The base side of the contamination diagnostic in a stored baseline: the probes' settings and, per hashed
    sample id, the probe's digest and the log-probabilities per token of the reference answer and its neighbours."""

    settings: Mapping[str, JSON]
    items: Mapping[str, tuple[str, tuple[float, ...]]]

    def to_json(self) -> dict[str, JSON]:
        return {
            "settings": dict(self.settings),
            "items": [{"id": hid, "digest": d, "logprobs": list(v)} for hid, (d, v) in self.items.items()],
        }

    @classmethod
    def from_json(cls, data: JSON, where: str) -> BaselineProbes | None:
        """Checked like the scores: a value that is not a finite number, an item without neighbours or listed
        twice is refused (an edited or damaged baseline)."""
        if data is None:
            return None
        settings = _get(data, "settings", dict, where)
        items: dict[str, tuple[str, tuple[float, ...]]] = {}
        for i, item in enumerate(_get(data, "items", list, where)):
            here = f"{where}, items[{i}]"
            hid, digest = _get(item, "id", str, here), _get(item, "digest", str, here)
            values = _get(item, "logprobs", list, here)
            if len(values) < 2 or not all(_finite(v) and v <= 0 for v in values):
                raise RecordError(f"{here}: logprobs must be two or more finite numbers <= 0")
            if hid in items:
                raise RecordError(f"{here}: sample {name_in_message(hid)} is listed twice")
            items[hid] = (digest, tuple(float(v) for v in values))
        return cls(settings, items)


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class BaselineEntry:
    """A model's stored scores on one task (--clue-save-baseline) and everything that decides whether they can be
    compared with a later run: the data's hash, the task's protocol, the decoding, the metrics' definitions."""

    task: str
    model: str
    protocol: Mapping[str, JSON]
    data: Mapping[str, JSON]
    decoding: Mapping[str, JSON]
    metrics: Mapping[str, Mapping[str, JSON]]  # name -> kind, higher_is_better, fingerprint
    samples: tuple[BaselineSample, ...]
    clue: str | None = None  # the version that saved it
    model_fingerprint: Mapping[str, JSON] = field(default_factory=dict)
    weights_probe: str | None = None
    n: int | None = None
    contamination: BaselineProbes | None = None  # the base side of the contamination diagnostic
    contamination_reference: BaselineProbes | None = None  # likewise, of the --clue-contamination-reference items

    KEYS = ("task", "model", "protocol", "data", "decoding", "metrics", "samples")

    def to_json(self) -> dict[str, JSON]:
        return {
            "task": self.task,
            "model": self.model,
            "clue": self.clue,
            "protocol": dict(self.protocol),
            "data": dict(self.data),
            "decoding": dict(self.decoding),
            "metrics": {name: dict(m) for name, m in self.metrics.items()},
            "model_fingerprint": dict(self.model_fingerprint),
            "weights_probe": self.weights_probe,
            "n": self.n,
            "contamination": self.contamination.to_json() if self.contamination else None,
            "contamination_reference": (
                self.contamination_reference.to_json() if self.contamination_reference else None
            ),
            "samples": [s.to_json() for s in self.samples],
        }

    @classmethod
    def from_json(cls, data: JSON, where: str) -> BaselineEntry:
        if not isinstance(data, Mapping) or any(k not in data for k in cls.KEYS):
            raise RecordError(f"{where}: needs the keys {', '.join(cls.KEYS)}")
        task, model = name_in_message(data["task"]), name_in_message(data["model"])
        here = f"{where.rpartition(', entry ')[0] or where}, entry {task}/{model}"
        samples = data["samples"]
        if not isinstance(samples, list):
            raise RecordError(f"{here}: every sample needs an id and a scores table")
        tables = {key: _get(data, key, dict, here) for key in ("protocol", "data", "decoding", "metrics")}
        return cls(
            task=str(data["task"]),
            model=str(data["model"]),
            protocol=tables["protocol"],
            data=tables["data"],
            decoding=tables["decoding"],
            metrics=tables["metrics"],
            samples=tuple(BaselineSample.from_json(s, here) for s in samples),
            clue=_get(data, "clue", str, here, optional=True),
            model_fingerprint=_get(data, "model_fingerprint", dict, here, optional=True) or {},
            weights_probe=_get(data, "weights_probe", str, here, optional=True),
            n=_get(data, "n", int, here, optional=True),
            contamination=BaselineProbes.from_json(data.get("contamination"), f"{here}, contamination"),
            contamination_reference=BaselineProbes.from_json(
                data.get("contamination_reference"), f"{here}, contamination_reference"
            ),
        )
