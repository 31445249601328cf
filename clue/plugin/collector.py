"""The results collector: the rows of finished cases (xdist workers send theirs on the test reports) and the selected
cases that did not finish, handed to the run at the end, and the terminal summary."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from clue.plugin import xdist
from clue.plugin.state import run_key, selected_cases, session_key, session_of
from clue.plugin.terminal import contamination_gaps, github_annotations, summary_lines, time_line
from clue.records import CaseRow, NotRun, RunStats
from clue.report import junit
from clue.run.outputs import Finished


class ResultsCollector:
    """Gathers the rows of finished cases (xdist workers send theirs to the controller on the test reports) and the
    selected cases that did not finish, hands them to the run at the end, and prints the summary table."""

    def __init__(self, config: pytest.Config, xdist_hooks: xdist.XdistHooks | None = None):
        self.config = config
        self.xdist_hooks = xdist_hooks
        self.rows: list[CaseRow] = []
        self.not_run: list[NotRun] = []  # selected cases without a result: skipped or errored, and why
        self.finished: Finished | None = None
        self.started = time.perf_counter()
        self.selected: list[tuple[str, str]] = []  # (task, case) of every selected clue case, in order

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.selected = [(task, model.case or model.name) for model, task in selected_cases(session.items)]

    def _stopped(self) -> list[NotRun]:
        """The selected cases a stopped run never finished (the one running when it stopped included): the reports
        list them, so that "not run: none" never stands beside cases that did not run."""
        done = {(row.task, row.case) for row in self.rows} | {(n.task, n.model) for n in self.not_run}
        reason = "the run was stopped (Ctrl-C or SIGTERM) before this case finished"
        return [NotRun(task, case, "stopped", reason) for task, case in self.selected if (task, case) not in done]

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        info: dict[str, Any] | None = getattr(report, "clue", None)
        if info is None:
            return
        if report.when == "call" and info.get("row"):
            row = replace(CaseRow.from_json(info["row"], report.nodeid), outcome=report.outcome)
            self.rows.append(row)
            junit.add_case_properties(self.config, row)
            self.config.hook.pytest_clue_case_result(config=self.config, case=row)
            return
        if info.get("row") or report.passed or report.when == "teardown":
            return
        status, reason = _why_not_run(report)
        self.not_run.append(NotRun(info["task"], info.get("case") or info["model"], status, reason))

    def stats(self) -> RunStats:
        """This process's statistics plus those the xdist workers sent: loads, reuse and time per model."""
        workers = self.xdist_hooks.worker_stats if self.xdist_hooks else []
        parts = [session_of(self.config).stats()] if session_key in self.config.stash else []
        return RunStats.merged(parts + workers, time.perf_counter() - self.started, max(1, len(workers)))

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if hasattr(self.config, "workerinput"):  # an xdist worker: the controller merges
            workeroutput: dict[str, Any] = getattr(self.config, "workeroutput", {})
            if session_key in self.config.stash:
                workeroutput["clue"] = session_of(self.config).stats().to_json()  # execnet carries plain data
            return
        # Ctrl-C before any case finished still rewrites the reports (pytest rewrites junit.xml too), so that no
        # folder holds a JUnit of this run next to a report of the previous one
        interrupted = exitstatus == pytest.ExitCode.INTERRUPTED and bool(session_of(self.config).plan.tasks)
        if not self.rows and not self.not_run and not interrupted:
            return  # no clue test ran: a project without clue tests gets no reports
        run = self.config.stash[run_key]
        not_run = self.not_run + (self._stopped() if exitstatus == pytest.ExitCode.INTERRUPTED else [])
        self.finished = run.finish(self.rows, not_run, self.stats(), interrupted=interrupted)
        if self.finished.unwritten and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED  # a gate whose reports are missing did not pass
        xmlpath = self.config.option.xmlpath
        if xmlpath and Path(xmlpath).is_file():
            junit.conform(Path(xmlpath))

    @property
    def reports_dir(self) -> Path:
        return session_of(self.config).settings.outputs.reports_dir

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.rows:
            return
        tr = terminalreporter
        tr.section("clue results")
        for row in sorted(self.rows, key=lambda r: (r.task, r.case)):
            for line in summary_lines(row):
                tr.write_line(line)
        for line in contamination_gaps(self.rows):
            tr.write_line(line)
        stats = self.stats()
        if stats.loads or stats.reused:
            names = sorted(set(stats.loads) | set(stats.reused))
            loads = ", ".join(f"{name} {stats.loads.get(name, 0)}" for name in names)
            reused = ", ".join(f"{name} {stats.reused.get(name, 0)}" for name in names)
            tr.write_line(f"model loads: {loads}; generations reused from the store: {reused}")
        if stats.wall_s > 0:
            tr.write_line(time_line(stats))
        tr.write_line(f"results JSON: {self.reports_dir / 'clue-results.json'}")
        tr.write_line(f"report: {self.reports_dir / 'index.html'} (summary: {self.reports_dir / 'summary.md'})")
        if self.finished is not None and self.finished.saved_baseline is not None:
            saved = self.finished
            tr.write_line(f"baseline saved: {saved.saved_baseline} ({saved.baseline_entries} task x model entries)")
        if self.finished is not None and self.finished.tracked:
            tr.write_line(self.finished.tracked)
        if os.environ.get("GITHUB_ACTIONS") == "true":
            for line in github_annotations(self.rows):
                tr.write_line(line)
        if self.finished is not None and self.finished.unwritten:
            listed = "; ".join(self.finished.unwritten)
            tr.write_line(f"clue: reports not written (the verdicts above stand): {listed}", red=True, bold=True)


def _why_not_run(report: pytest.TestReport) -> tuple[str, str]:
    """(status: skipped | error, the reason in one line): pytest.skip's message, or the failure's (clue's own
    messages carry no traceback and no raw sample id)."""
    if report.skipped:
        longrepr = report.longrepr
        message = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        return "skipped", message.removeprefix("Skipped: ")
    text = report.longreprtext.strip()
    lines = [line for line in text.splitlines() if line.strip()]
    reason = " ".join(lines[:3]) if lines else "failed"
    return "error", reason[:500]
