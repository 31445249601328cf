"""The run's records: a selected case without a result (`NotRun`), the row the summary, JUnit, the annotations and
the `pytest_clue_case_result` hook get (`CaseRow`), what the run did (`RunStats`) and the merged results
(`RunRecord`)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from clue.records.case import CaseRecord
from clue.records.reading import JSON, SCHEMA_VERSION, RecordError, _get, _list, _schema
from clue.statistics.paired import Comparison


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
