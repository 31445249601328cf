"""The report model: everything the HTML and Markdown reports show, derived from the results JSON records only.

Rows are models, columns are tasks in the paper's order (Level 1, then Level 2) plus per-level and overall
averages of each task's primary metric; each cell carries the value, its CI, the difference to the base model with
its CI, and the verdict. Flips pair the model's and the base's samples by (hashed) id.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from clue.records import CaseRecord, ContaminationRecord, NotRun, RunRecord
from clue.statistics.sequential import Stop
from clue.tasks import task_names

VERDICTS = ("regressed", "inconclusive", "non-inferior", "improved", "reference")


@dataclass(frozen=True)
class Cell:
    task: str
    model: str
    metric: str
    value: float
    ci: tuple[float, float]
    verdict: str
    base: str | None = None
    base_value: float | None = None
    delta: float | None = None
    delta_ci: tuple[float, float] | None = None
    p_regression: float | None = None
    margin: float | None = None
    mde: float | None = None  # minimum detectable effect at 80 % power
    regression_alpha: float | None = None  # the level of the regression claim (Holm-adjusted in a family)
    gated: bool = True
    n: int | None = None

    @property
    def underpowered(self) -> bool:
        """MDE > margin: this comparison cannot show non-inferiority at its margin (80 % power)."""
        return self.mde is not None and self.margin is not None and self.mde > self.margin


@dataclass(frozen=True)
class Flip:
    sample_id: str
    base_score: float
    model_score: float
    base: Mapping[str, Any]
    model: Mapping[str, Any]


@dataclass(frozen=True)
class TaskColumn:
    name: str
    title: str
    level: int
    primary: str


@dataclass
class Report:
    tasks: list[TaskColumn]
    models: list[str]
    cells: dict[tuple[str, str], Cell]
    details: dict[str, list[Cell]]  # task -> every metric of every model
    lost: dict[tuple[str, str], list[Flip]] = field(default_factory=dict)  # base right/better, model worse
    gained: dict[tuple[str, str], list[Flip]] = field(default_factory=dict)
    flag_counts: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)
    provenance: list[dict[str, Any]] = field(default_factory=list)
    confidence: float = 0.95
    not_run: list[NotRun] = field(default_factory=list)  # selected cases without a result, and why
    strict: bool = False  # --clue-strict: inconclusive cases failed this run
    interrupted: bool = False  # Ctrl-C or SIGTERM: not every selected case finished
    flip_totals: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)  # (lost, gained), all of them
    # (row, task) -> one line each of what the run's outputs say beside the verdict: identical to the base's, copies
    # of a few-shot answer, both sides at the floor or ceiling (information: none of these fails a case)
    diagnostics: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    # (row, task) -> where --clue-sequential stopped the case (look, samples used of available, boundary, level)
    sequential: dict[tuple[str, str], Stop] = field(default_factory=dict)
    # (row, task) -> the case's contamination diagnostic (gated cases, unless --clue-contamination off)
    contamination: dict[tuple[str, str], ContaminationRecord] = field(default_factory=dict)
    # the cases run under several wordings of their instruction (--clue-phrasings), in the run's order
    worded: list[CaseRecord] = field(default_factory=list)

    def averages(self, model: str) -> dict[str, float | None]:
        """Mean primary metric over the tasks this model has, per level and overall (None when it has none)."""
        out: dict[str, float | None] = {}
        for key, levels in (("Level 1", {1}), ("Level 2", {2}), ("All", {1, 2})):
            values = [
                self.cells[(model, t.name)].value
                for t in self.tasks
                if t.level in levels and (model, t.name) in self.cells
            ]
            out[key] = sum(values) / len(values) if values else None
        return out

    def verdict_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(VERDICTS, 0)
        for cell in self.cells.values():
            counts[cell.verdict] = counts.get(cell.verdict, 0) + 1
        return counts

    def headline(self) -> tuple[str, list[str]]:
        """("failing" | "nothing gated" | "ok", plain-text lines): what this run says, in one place for the HTML
        and the Markdown summary. Every failing case is named, whatever made it fail."""
        failing = [
            f"{c.model} on {c.task}: regressed ({c.metric} Δ {c.delta:+.3f})"
            for c in self.comparisons()
            if c.verdict == "regressed" and c.delta is not None
        ]
        if self.strict:
            failing += [
                f"{c.model} on {c.task}: inconclusive (fails under --clue-strict)"
                for c in self.comparisons()
                if c.verdict == "inconclusive"
            ]
        failing += [f"{n.model} on {n.task}: error ({n.reason})" for n in self.not_run if n.status == "error"]
        skipped = [f"{n.model} on {n.task}: {n.status} ({n.reason})" for n in self.not_run if n.status != "error"]
        if self.interrupted:
            failing.insert(
                0,
                "the run was stopped (Ctrl-C or SIGTERM) before every selected case finished (what was generated "
                "is in the store: a re-run resumes)",
            )
        if failing:
            return "failing", failing + skipped
        if not self.comparisons():
            return "nothing gated", [
                "Nothing was gated: no model was compared with a base model in this run.",
                *skipped,
            ]
        return "ok", ["No model regressed against its base model or baseline.", *skipped]

    def comparisons(self) -> list[Cell]:
        return [
            c for t in self.tasks for m in self.models if (c := self.cells.get((m, t.name))) and c.delta is not None
        ]


def diagnostic_lines(record: CaseRecord) -> list[str]:
    """What a results record says beside its verdict, one sentence each (the report, the summary, the terminal)."""
    lines = []
    identical = record.identical_outputs
    if identical is not None and identical.n:
        what = "baseline" if record.base_kind == "baseline" else "base"
        lines.append(f"outputs identical to the {what} on {identical.n} of {identical.of} samples")
    copies = record.few_shot_copies
    if copies is not None and copies.n:
        lines.append(f"{copies.n} of {copies.of} outputs copy a few-shot example's answer")
    if record.floor_ceiling:
        lines.append(record.floor_ceiling)
    if record.contamination is not None and record.contamination.statistic is not None:
        lines.append(record.contamination.summary)  # not available / not applicable: said once per run instead
    return lines


def sequential_text(stop: Stop) -> str:
    """Where a sequential case stopped, in words (the summary, the HTML report)."""
    crossed = {"regressed": "the regression boundary", "non-inferior": "the non-inferiority boundary"}
    how = crossed.get(str(stop.boundary), "no boundary (the data ran out)")
    saved = 1 - stop.samples / stop.samples_available if stop.samples_available else 0.0
    return (
        f"look {stop.look} of {stop.looks}: {stop.samples} of {stop.samples_available} "
        f"samples, {saved:.0%} not generated; crossed {how}"
    )


def _cell(record: CaseRecord, metric: str) -> Cell:
    entry = record.metrics[metric]
    c = entry.comparison
    base = record.base_model
    return Cell(
        task=record.task,
        model=record.row,
        metric=metric,
        value=entry.value,
        ci=(entry.ci_low, entry.ci_high),
        verdict=c.verdict if c else "reference",
        base=f"{base} (baseline)" if base and record.base_kind == "baseline" else base,
        base_value=c.base_mean if c else None,
        delta=c.delta if c else None,
        delta_ci=(c.ci_low, c.ci_high) if c else None,
        p_regression=c.p_regression if c else None,
        margin=c.margin if c else None,
        mde=c.mde if c else None,
        regression_alpha=c.regression_alpha if c else None,
        gated=entry.gate,
        n=(c.units or c.n) if c else None,
    )


def _flips(record: CaseRecord, base: CaseRecord, metric: str) -> tuple[list[Flip], list[Flip]]:
    """All samples where the base did better (lost) and where the model did better (gained), largest first.

    Binary metrics: every discordant pair. Continuous: pairs whose scores differ by at least 0.1.
    """
    base_samples = {s.id: s for s in base.samples}
    binary = record.metrics[metric].kind == "binary"
    lost: list[Flip] = []
    gained: list[Flip] = []
    for sample in record.samples:
        other = base_samples.get(sample.id)
        if other is None:
            continue
        m, b = sample.scores[metric], other.scores[metric]
        if (binary and m == b) or (not binary and abs(m - b) < 0.1):
            continue
        flip = Flip(sample.id, b, m, other.view(), sample.view())
        (lost if m < b else gained).append(flip)
    lost.sort(key=lambda f: f.model_score - f.base_score)
    gained.sort(key=lambda f: f.base_score - f.model_score)
    return lost, gained


def build_report(run: RunRecord, *, flip_limit: int = 20) -> Report:
    order = {name: i for i, name in enumerate(task_names())}
    tasks: dict[str, TaskColumn] = {}
    models: list[str] = []
    for r in run.results:
        tasks.setdefault(r.task, TaskColumn(r.task, r.task_title, r.level, r.primary_metric))
        if r.row not in models:
            models.append(r.row)
    columns = sorted(tasks.values(), key=lambda t: (t.level, order.get(t.name, len(order)), t.name))
    report = Report(
        tasks=columns,
        models=models,
        cells={},
        details={},
        not_run=list(run.not_run),
        strict=run.strict,
        interrupted=run.interrupted,
    )
    by_key = {(r.row, r.task): r for r in run.results}
    for r in run.results:
        _add_record(report, r, tasks[r.task], by_key, flip_limit)
    for cells in report.details.values():
        cells.sort(key=lambda c: (c.metric, models.index(c.model)))
    return report


def _add_record(
    report: Report,
    r: CaseRecord,
    task: TaskColumn,
    by_key: Mapping[tuple[str, str], CaseRecord],
    flip_limit: int,
) -> None:
    """One results record's cells, detail rows, flags, flips against a live base model, and provenance."""
    key = (r.row, r.task)
    report.cells[key] = _cell(r, task.primary)
    report.details.setdefault(r.task, []).extend(_cell(r, m) for m in r.metrics)
    counts: dict[str, int] = {}
    for sample in r.samples:
        for flag in sample.flags:
            counts[flag] = counts.get(flag, 0) + 1
    report.flag_counts[key] = counts
    if r.sequential is not None:
        report.sequential[key] = r.sequential
    if r.contamination is not None:
        report.contamination[key] = r.contamination
    if r.phrasings_summary is not None:
        report.worded.append(r)
    notes = diagnostic_lines(r)
    if notes:
        report.diagnostics[key] = notes
    # a stored baseline has scores, not outputs: flips are shown against a base model of this run only
    live_base = r.base_model and (r.base_kind or "model") == "model"
    base = by_key.get((r.base_model, r.task)) if live_base and r.base_model else None
    if base is not None:
        lost, gained = _flips(r, base, task.primary)
        report.flip_totals[key] = (len(lost), len(gained))  # counted in full, shown in part
        report.lost[key] = lost[:flip_limit]
        report.gained[key] = gained[:flip_limit]
    report.provenance.append(
        {
            "task": r.task,
            "model": r.row,
            "n": r.n,
            "settings": dict(r.generation_settings),
            "provenance": dict(r.provenance),
            "fingerprints": {m: dict(e.fingerprint) for m, e in r.metrics.items()},
        }
    )
    report.confidence = r.confidence
