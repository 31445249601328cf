"""The evaluation core: for a case (a model and what it is compared with) and a task, generate through the store,
score, gate and build the results record. The pytest plugin and `clue.evaluate()` both call it, so a notebook gets
the numbers `pytest benchmarks` gets.

    import clue

    run = clue.evaluate(tasks=["mednli", "medisumcode"], limit=50)    # [tool.clue] of ./pyproject.toml applies
    for case in run.results:
        print(case.task, case.case, case.verdict, case.record["metrics"]["accuracy"]["value"])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from clue import baseline
from clue.config import Layer, settings_from, tool_clue
from clue.errors import ClueError
from clue.gate import GateOutcome, run_gate
from clue.models import ModelSpec
from clue.report import results as results_report
from clue.session import ClueSession
from clue.tasks import get_task, task_names
from clue.types import TaskResult


@dataclass(frozen=True)
class CaseResult:
    """One finished case: its results record (the results JSON), the gate's outcome (None for a reference model),
    and how a test of it ends: `failure` (regressed, outputs identical to the base, inconclusive under strict) or
    `warning` (inconclusive), both None when it passes."""

    case: str
    task: str
    model: str
    record: dict[str, Any]
    outcome: GateOutcome | None
    failure: str | None = None
    warning: str | None = None

    @property
    def verdict(self) -> str:
        return str(self.record["verdict"])


def evaluate_case(
    session: ClueSession,
    case_id: str,
    case: ModelSpec,
    result: TaskResult,
    headline: Callable[[GateOutcome, str], str] | None = None,
) -> CaseResult:
    """Gate `result` (the case's model on one task) against the case's base model or stored baseline. Raises
    ClueError when no comparison can be made (the base failed, a baseline measured something else). `headline`
    may restyle the first line of a failure (the pytest_clue_headline hook)."""
    settings = session.settings
    stop = session.stops.get((case_id, result.task))
    if stop is not None:  # the sequential gate stopped here: the samples it used, at its look's level
        kept = stop.samples
        result = replace(result, samples=result.samples[:kept], generations=result.generations[:kept])
    outcome, reference = None, None
    try:
        reference = session.reference(case, result)
        if reference is not None:
            outcome = run_gate(result, reference, settings, stop.level if stop else None)
    except ClueError as exc:
        prefix = f"base model {case.base!r}: " if case.base else ""
        raise ClueError(prefix + str(exc)) from None
    data = session.data(get_task(result.task))
    assert data is not None  # the result exists, so the data did
    record = results_report.result_record(
        result,
        outcome,
        samples=data.scored[: result.n],
        sequential=stop.as_dict() if stop else None,
        show_samples=settings.report_samples,
        alpha=settings.alpha,
        resamples=settings.resamples,
        seed=settings.bootstrap_seed,
        case=case_id,
    )
    state, same = session.weights_check(case, reference)
    record["weights_check"] = None if outcome is None else state
    done = CaseResult(case_id, result.task, result.model, record, outcome)
    if outcome is not None and same is not None:
        first = outcome.headline("weights not applied")
        record["headline"] = first
        return replace(done, failure=f"{first}\n  {same}")
    return done if outcome is None else _verdict(done, headline, settings.strict)


def _verdict(case: CaseResult, headline: Callable[[GateOutcome, str], str] | None, strict: bool) -> CaseResult:
    """How the case's test ends: the message of a failure or a warning, each starting with its one-line headline."""
    outcome = case.outcome
    assert outcome is not None
    first = outcome.headline()
    first = headline(outcome, first) if headline is not None else first
    case.record["headline"] = first
    text = first + "\n" + outcome.message().partition("\n")[2]
    if outcome.regressed:
        return replace(case, failure=text)
    if outcome.inconclusive:
        if strict:
            return replace(case, failure=text + "\n(--clue-strict: inconclusive comparisons fail)")
        return replace(case, warning=text)
    return case


@dataclass
class Evaluation:
    """What `clue.evaluate()` returns: every finished case, and the selected cases without a result (skipped: no
    data; error: invalid data, a failed model, a refused baseline) with the reason."""

    results: list[CaseResult] = field(default_factory=list)
    not_run: list[dict[str, str]] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    saved_baseline: Path | None = None  # where save_baseline= wrote the baseline

    def result(self, task: str, case: str) -> CaseResult:
        return next(r for r in self.results if r.task == task and r.case == case)

    @property
    def failed(self) -> list[CaseResult]:
        return [r for r in self.results if r.failure is not None]


def evaluate(
    tasks: Sequence[str] | None = None,
    *,
    root: str | Path = ".",
    cases: Sequence[str] | None = None,
    write_reports: bool = False,
    **options: Any,
) -> Evaluation:
    """Run clue from Python: every case of the configured models on `tasks` (default: every task), with the
    settings of `[tool.clue]` in `root`/pyproject.toml overridden by `options` — the `--clue-*` options by their
    Python names (`model="org/m"`, `base_model=...`, `matrix="models.toml"`, `limit=50`, `margin=0.03`,
    `data={"mednli": "path"}`, ...). `cases` selects test ids ("candidate", "candidate-vs-base"). Reports are
    written to the reports folder only with `write_reports=True`; the generation store is shared with pytest runs."""
    rootpath = Path(root).resolve()
    if isinstance(options.get("data"), Mapping):
        options["data"] = [f"{task}={file}" for task, file in options["data"].items()]
    layers = [Layer("evaluate()", options, Path.cwd()), Layer("[tool.clue]", tool_clue(rootpath), rootpath)]
    session = ClueSession(settings_from(rootpath, layers))
    session.check_models()
    selected = [(i, c) for i, c in session.cases.items() if cases is None or i in cases]
    names = list(tasks) if tasks is not None else task_names()
    for _, case in selected:
        for name in names:
            session.need(case, name)
    run = Evaluation()
    try:
        for name in names:
            for case_id, case in selected:
                _run_case(session, run, case_id, case, name)
        run.stats = session.stats()
        if session.settings.save_baseline is not None:
            _save_baseline(session, run, session.settings.save_baseline)
    finally:
        session.close()
    if write_reports:
        _write_reports(session, run)
    return run


def _save_baseline(session: ClueSession, run: Evaluation, path: Path) -> None:
    """save_baseline=: the finished cases' entries (one per task x model) in one file, as --clue-save-baseline."""
    entries: dict[tuple[str, str], dict[str, Any]] = {}
    for case in run.results:
        entries[(case.task, case.model)] = session.baseline_entry(session.result(case.model, case.task))
    run.saved_baseline = baseline.write(path, list(entries.values()))


def _run_case(session: ClueSession, run: Evaluation, case_id: str, case: ModelSpec, name: str) -> None:
    try:
        task = get_task(name)
        if session.data(task) is None:
            reason, status, settings = session.missing_data_reason(task), "skipped", session.settings
            if settings.require_data or settings.strict:  # as the plugin: a selected task without data fails
                flag = "require_data" if settings.require_data else "strict"
                reason, status = f"{reason} ({flag}: a selected task without data fails)", "error"
            run.not_run.append({"task": name, "model": case_id, "status": status, "reason": reason})
            return
        run.results.append(evaluate_case(session, case_id, case, session.result(case.name, name)))
    except ClueError as exc:
        run.not_run.append({"task": name, "model": case_id, "status": "error", "reason": str(exc)})


def _write_reports(session: ClueSession, run: Evaluation) -> None:
    from clue.report.render import write_reports

    folder = session.settings.reports_dir
    paths = [
        results_report.write_json(results_report.result_path(folder, r.task, r.case), r.record) for r in run.results
    ]
    meta: dict[str, Any] = {"not_run": run.not_run, "strict": session.settings.strict, "interrupted": False}
    write_reports(folder, results_report.merge(folder, paths, **meta), **meta)
    results_report.write_json(folder / "clue-session.json", run.stats)
