"""`clue.evaluate()`: clue from Python, the same run the pytest plugin drives (clue.run.outputs.Run), without pytest.

import clue

run = clue.evaluate(tasks=["mednli", "medisumcode"], limit=50)    # [tool.clue] of ./pyproject.toml applies
for case in run.results:
    print(case.task, case.case, case.verdict, case.record.metrics["accuracy"].value)
"""

from __future__ import annotations

import difflib
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clue.config import Layer, settings_from, tool_clue
from clue.errors import ClueError, ConfigError, ReportsWarning
from clue.models.matrix import ModelSpec
from clue.records import CaseRow, NotRun, RunStats
from clue.run.evaluation import CaseResult, evaluate_case
from clue.run.outputs import Run
from clue.run.session import ClueSession
from clue.tasks import task_names

# options of the pytest front end that mean nothing in one Python process: refused by name, not ignored
NOT_HERE = {
    "gpus": "it splits GPUs among pytest-xdist workers; clue.evaluate runs in one process (set "
    "CUDA_VISIBLE_DEVICES before calling it)",
}


@dataclass
class Evaluation:
    """What `clue.evaluate()` returns: every finished case, and the selected cases without a result (skipped: no
    data; error: invalid data, a failed model, a refused baseline) with the reason."""

    results: list[CaseResult] = field(default_factory=list)
    not_run: list[NotRun] = field(default_factory=list)
    stats: RunStats = field(default_factory=RunStats)
    saved_baseline: Path | None = None  # where save_baseline= wrote the baseline
    tracked: str | None = None  # mlflow=: what was logged to the tracking store
    unwritten: tuple[str, ...] = ()  # "PATH: why" for each report or baseline that could not be written

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
    refused = sorted(set(options) & set(NOT_HERE))
    if refused:
        raise ConfigError(f"clue.evaluate(): {refused[0]}= is not taken here: {NOT_HERE[refused[0]]}")
    layers = [
        Layer("evaluate()", options, Path.cwd(), "python"),
        Layer(f"{rootpath / 'pyproject.toml'} [tool.clue]", tool_clue(rootpath), rootpath, "toml"),
    ]
    names = _named("task", tasks, task_names()) if tasks is not None else task_names()
    session = ClueSession(settings_from(rootpath, layers))
    chosen = _named("case", cases, list(session.plan.cases)) if cases is not None else None
    session.plan.check_models()
    selected = [c for i, c in session.plan.cases.items() if chosen is None or i in chosen]
    for case in selected:
        for name in names:
            session.plan.need(case, name)
    session.plan.check_data_use()
    began = time.perf_counter()
    out, run = Evaluation(), Run(session, files=write_reports)
    rows: list[CaseRow] = []
    try:
        for name in names:
            for case in selected:
                done = _run_case(session, out, case, name)
                if done is not None:
                    out.results.append(done)
                    rows.append(run.case_finished(done))
        out.stats = RunStats.merged([session.stats()], time.perf_counter() - began)
        finished = run.finish(rows, out.not_run, out.stats)
        out.saved_baseline, out.unwritten, out.tracked = finished.saved_baseline, finished.unwritten, finished.tracked
        if finished.unwritten:
            warnings.warn(f"clue: reports not written: {'; '.join(finished.unwritten)}", ReportsWarning, stacklevel=2)
    finally:
        session.close()
    return out


def _named(what: str, given: Any, known: list[str]) -> list[str]:
    """`tasks=` or `cases=` as a list of known names (one name may be given alone); an unknown one is a ConfigError
    with the nearest known name: a typo must not return an empty run that reads as "nothing regressed"."""
    items = [given] if isinstance(given, str) else given
    if not isinstance(items, Sequence) or not all(isinstance(item, str) for item in items):
        raise ConfigError(f"clue.evaluate(): {what}s= expects a list of {what} names, got {given!r}")
    for item in items:
        if item not in known:
            near = difflib.get_close_matches(item, known, n=1, cutoff=0.6)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise ConfigError(f"clue.evaluate(): no {what} {item!r}{hint}; {what}s: {', '.join(known)}")
    return list(items)


def _run_case(session: ClueSession, out: Evaluation, case: ModelSpec, name: str) -> CaseResult | None:
    """The case gated on one task; None, with the reason in `out.not_run`, when it has no result."""
    try:
        task = session.catalog.task(name)
        if session.catalog.data(task) is None:
            reason, status, settings = session.catalog.missing_data_reason(task), "skipped", session.settings
            if settings.data.require_data or settings.gate.strict:  # as the plugin: a selected task without data fails
                flag = "require_data" if settings.data.require_data else "strict"
                reason, status = f"{reason} ({flag}: a selected task without data fails)", "error"
            out.not_run.append(NotRun(name, case.case, status, reason))
            return None
        return evaluate_case(session, case.case, case, session.generator.result(case.name, name))
    except ClueError as exc:
        out.not_run.append(NotRun(name, case.case, "error", str(exc)))
        return None
