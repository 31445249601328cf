"""The clue pytest plugin (entry point `pytest11: clue`).

It stays inert in a session that collects no clue test: options are registered, nothing is loaded. A clue test
is a function marked `@pytest.mark.clue_task("<task>")` that asks for `clue_model`; the plugin parametrises it
over the model matrix, generates each model's outputs once per session, and `clue_gate` compares the model with
its base model sample by sample.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

import pytest

from clue.errors import ClueError, ConfigError, exception_text
from clue.models.matrix import ModelSpec
from clue.plugin import xdist
from clue.plugin.options import add_options, resolve
from clue.records import CaseRow, NotRun, RunStats
from clue.report import junit
from clue.report.model import sequential_text
from clue.run.evaluation import evaluate_case
from clue.run.gate import GateOutcome
from clue.run.outputs import Finished, Run
from clue.run.session import ClueSession
from clue.tasks.base import Task
from clue.types import Generation, TaskResult

session_key = pytest.StashKey[ClueSession]()
run_key = pytest.StashKey[Run]()


class ClueInconclusiveWarning(UserWarning):
    """A comparison could not show non-inferiority (nor a regression): too few samples or too much noise."""


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from clue.plugin import hooks

    pluginmanager.add_hookspecs(hooks)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "clue_task(name): the CLUE task this test evaluates (mednli, medisumcode, ...)")
    if hasattr(config, "workerinput"):
        xdist.configure_worker(config)  # GPUs and threads first: nothing has imported torch yet
    try:
        extras = [m for found in config.hook.pytest_clue_metrics(config=config) for m in found]
        session = ClueSession(resolve(config), extras)
        configured = bool(
            session.settings.models.model or session.settings.models.base_model or session.settings.models.matrix
        )
        if configured:
            session.cases  # noqa: B018 - validate the matrix and baselines now: a usage error, not N test errors
            if not hasattr(config, "workerinput"):  # the controller checks once for every worker
                session.check_models()
    except ConfigError as exc:
        raise pytest.UsageError(f"clue: {exc}") from None
    config.stash[session_key] = session
    config.stash[run_key] = Run(session)
    if session.settings.outputs.debug and not hasattr(config, "workerinput"):
        config.issue_config_time_warning(
            pytest.PytestWarning(
                "clue: --clue-debug shows full tracebacks and every exception's message; they may contain patient "
                "text (samples, prompts, outputs) and land in junit.xml and the CI log: do not share this run's "
                "artefacts"
            ),
            stacklevel=2,
        )
    _stop_on_sigterm(config)
    global _SESSIONS
    _SESSIONS += 1
    # a session run inside another in this process (pytester's in-process runs) writes no progress: suspending
    # the nested capture from inside a test crashed the interpreter there (measured: segfault in the next run)
    if config.option.verbose >= 0 and not hasattr(config, "workerinput") and _SESSIONS == 1:
        session.progress = TerminalProgress(config)
    hooks = None
    workers = int(getattr(config.option, "numprocesses", 0) or 0)
    if workers and not hasattr(config, "workerinput") and configured:
        gpus = xdist.visible_gpus(session.settings.generation.gpus)
        problem = xdist.check_gpu_split(gpus, workers, session.models)
        if problem:
            raise pytest.UsageError(f"clue: {problem}")
        hooks = xdist.XdistHooks(gpus, session.models, session.cases)
        config.pluginmanager.register(hooks, "clue-xdist")
    config.pluginmanager.register(ResultsCollector(config, hooks), "clue-results-collector")


_SESSIONS = 0  # clue sessions configured and not yet unconfigured in this process


def _stop_on_sigterm(config: pytest.Config) -> None:
    """SIGTERM (a CI runner's timeout or cancel) ends the run as Ctrl-C does: pytest unwinds, the generations made
    so far are in the store, and the reports are written for the cases that finished and say the run was stopped.
    Only in the main process's main thread, and only where nobody installed a handler of their own; a second
    SIGTERM kills at once."""
    if hasattr(config, "workerinput") or threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def stop(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise KeyboardInterrupt("SIGTERM")

    def restore() -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    signal.signal(signal.SIGTERM, stop)
    config.add_cleanup(restore)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Free what the session holds: an idle engine kept between entries (vLLM's, for LoRA entries on one base) and
    the store's connection."""
    global _SESSIONS
    if session_key in config.stash:
        _SESSIONS -= 1
    session = config.stash.get(session_key, None)
    if session is not None:
        session.close()


def _session(config: pytest.Config) -> ClueSession:
    return config.stash[session_key]


def _fail(exc: Exception, prefix: str = "") -> NoReturn:
    """Fail with clue's own message only: no traceback, no chained "during handling" duplicate."""
    message = prefix + str(exc)
    del exc
    raise pytest.fail.Exception(message, pytrace=False) from None


def _task_name(node: pytest.Item | pytest.Function) -> str | None:
    marker = node.get_closest_marker("clue_task")
    if marker is None:
        return None
    if len(marker.args) != 1 or not isinstance(marker.args[0], str):
        raise pytest.UsageError(f"{node.nodeid}: use @pytest.mark.clue_task('<task name>')")
    return marker.args[0]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "clue_model" not in metafunc.fixturenames:
        return
    session = _session(metafunc.config)
    try:
        cases = session.cases
    except ConfigError as exc:
        # no model configured at all: one failing case that says how to configure one
        metafunc.parametrize("clue_model", [pytest.param(str(exc), id="no-model")])
        return
    metafunc.parametrize("clue_model", list(cases.values()), ids=list(cases))


def _selected_cases(items: list[pytest.Item]) -> Iterator[tuple[ModelSpec, str]]:
    """(case, task) of every selected clue item."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        model = callspec.params.get("clue_model") if callspec is not None else None
        task = _task_name(item)
        if isinstance(model, ModelSpec) and task is not None:
            yield model, task


def pytest_collection_finish(session: pytest.Session) -> None:
    """Plan generation from the selected items only, so `-k medisumcode` loads and runs what it needs."""
    for model, task in _selected_cases(session.items):
        _session(session.config).need(model, task)


case_key = pytest.StashKey[dict[str, Any]]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A clue case's record rides on its reports as `report.clue` (xdist sends it to the controller with the
    report), so results reach the summary, the reports and the JUnit properties as data, not as property
    strings parsed back."""
    report = yield
    info = item.stash.get(case_key, None)
    if info is not None:
        report.clue = dict(info)
    if report.failed and call.excinfo is not None and _is_clue_item(item):
        session = item.config.stash.get(session_key, None)
        if session is None or not session.settings.outputs.debug:
            report.longrepr = _clean_failure(call.excinfo)
            report.sections = []  # captured output of a clue test may echo a prompt or an output, as locals do
    return report


def _is_clue_item(item: pytest.Item) -> bool:
    return item.get_closest_marker("clue_task") is not None or "clue_model" in getattr(item, "fixturenames", ())


def _clean_failure(excinfo: pytest.ExceptionInfo[BaseException]) -> str:
    """A failing or erroring clue test's report without its traceback: pytest's long form prints every frame's
    locals and the fixtures' arguments (a test's `clue_generations` holds every sample id and output), and it lands
    in junit.xml and the CI log. clue's own failures keep their message, which names samples by hashed id only;
    anything else is named by type and place (--clue-debug restores the full traceback)."""
    exc = excinfo.value
    if isinstance(exc, pytest.fail.Exception) and not exc.pytrace:
        return str(exc.msg)
    entry = excinfo.traceback[-1] if excinfo.traceback else None
    where = f" at {Path(str(entry.path)).name}:{entry.lineno + 1}" if entry is not None else ""
    if isinstance(exc, AssertionError):  # pytest's rewritten assertion shows the values it compared
        text = "AssertionError (the compared values are withheld: they may quote patient text; --clue-debug)"
    else:
        text = exception_text(exc)
    return f"{text}{where} (traceback withheld: it may hold patient text; --clue-debug shows it)"


@pytest.fixture(scope="session")
def clue_session(pytestconfig: pytest.Config) -> ClueSession:
    """The session's models, data, generations and scores."""
    return _session(pytestconfig)


@pytest.fixture
def clue_task(request: pytest.FixtureRequest, clue_session: ClueSession) -> Task:
    """The task named by the test's `clue_task` marker, with its data checked (skip if absent, fail if invalid)."""
    model = request.getfixturevalue("clue_model")
    if isinstance(model, str):
        pytest.fail(f"clue: {model}", pytrace=False)
    name = _task_name(request.node)
    if name is None:
        raise pytest.UsageError(f"{request.node.nodeid}: mark the test with @pytest.mark.clue_task('<task>')")
    # before anything can skip or fail: the reports list every selected case of this run, with or without a result
    request.node.stash[case_key] = {"task": name, "model": model.name, "case": model.case or model.name}
    try:
        task = clue_session.task(name)
        data = clue_session.data(task)
    except ClueError as exc:
        _fail(exc)
    if data is None:
        reason = clue_session.missing_data_reason(task)
        settings = clue_session.settings
        if settings.data.require_data or settings.gate.strict:
            flag = "--clue-require-data" if settings.data.require_data else "--clue-strict"
            pytest.fail(f"{reason} ({flag}: a selected task without data fails)", pytrace=False)
        pytest.skip(reason)
    return task


@pytest.fixture
def clue_generations(clue_task: Task, clue_model: ModelSpec, clue_session: ClueSession) -> tuple[Generation, ...]:
    """This model's outputs for this task (all of the model's selected tasks are generated in one load)."""
    try:
        return clue_session.generations(clue_model.name, clue_task.name)
    except ClueError as exc:
        _fail(exc)


@pytest.fixture
def clue_result(
    clue_task: Task,
    clue_model: ModelSpec,
    clue_session: ClueSession,
    clue_generations: tuple[Generation, ...],
) -> TaskResult:
    """Per-sample scores and aggregates of this model on this task."""
    try:
        return clue_session.result(clue_model.name, clue_task.name)
    except ClueError as exc:
        _fail(exc)


@pytest.fixture
def clue_gate(request: pytest.FixtureRequest, clue_session: ClueSession) -> Callable[[TaskResult], GateOutcome | None]:
    """Call with a TaskResult: writes the results JSON, and fails if the model regressed against its base model or
    stored baseline (warns, or fails under --clue-strict, when the comparison is inconclusive), or if its outputs
    are its base's (the new weights were not applied)."""

    def gate(result: TaskResult) -> GateOutcome | None:
        case: ModelSpec = request.getfixturevalue("clue_model")
        case_id = case.case or result.model
        info = request.node.stash.setdefault(case_key, {"task": result.task, "model": result.model, "case": case_id})

        def headline(outcome: GateOutcome, default: str) -> str:
            styled = request.config.hook.pytest_clue_headline(outcome=outcome, headline=default)
            return str(styled) if styled else default

        try:
            done = evaluate_case(clue_session, case_id, case, result, headline)
        except ClueError as exc:
            _fail(exc)
        info["row"] = request.config.stash[run_key].case_finished(done).to_json()
        if done.failure is not None:
            pytest.fail(done.failure, pytrace=False)
        if done.warning is not None:
            warnings.warn(ClueInconclusiveWarning(done.warning), stacklevel=2)
        return done.outcome

    return gate


class TerminalProgress:
    """Generation progress on the terminal while a test generates: all of a model's generation happens inside its
    first test, where pytest captures output, so a progress bar would show only with -s. This writes through the
    terminal reporter with capture suspended: on a terminal one line per model, rewritten at most twice a second;
    in a CI log a line every 30 s. Quiet under -q; never part of the captured output, so never in JUnit."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.last = 0.0
        self.first: dict[str, tuple[int, int, float]] = {}  # per model: done, tokens, seconds at its first result

    def __call__(self, model: str, engine: str, done: int, total: int, tokens: int, seconds: float) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        if reporter is None or capture is None:
            return
        tty = reporter.isatty()
        now = time.perf_counter()
        if done == 0:  # the engine is up (a backend that says so): rates count from here, not from its load
            self.first[model] = (0, 0, seconds)
            return
        started = model in self.first and self.first[model][0] == 0
        if model not in self.first or (done == 1 and not started):  # else from a model's (or chunk's) first result
            self.first[model] = (done, tokens, seconds)
        finished = done == total
        if not finished and now - self.last < (0.5 if tty else 30.0):
            return
        self.last = now
        line = f"clue: {model} ({engine}): {done}/{total} prompts{self._speed(model, done, total, tokens, seconds)}"
        if finished:
            line += f", done in {_duration(seconds)}"
        with capture.global_and_fixture_disabled():
            if tty:
                reporter.write("\r" + line.ljust(100) + ("\n" if finished else ""), flush=True)
            else:
                reporter.write_line(line)

    def _speed(self, model: str, done: int, total: int, tokens: int, seconds: float) -> str:
        """Rates from when the engine was up (backends that report it: an engine that returns results in bursts
        would otherwise show thousands of prompts/s), else from the model's first result (its load is not a rate);
        the ETA from them."""
        done0, tokens0, seconds0 = self.first[model]
        span = seconds - seconds0
        if done <= done0 or span <= 0:
            return ""
        rate = (done - done0) / span
        eta = f", ETA {_duration((total - done) / rate)}" if done < total else ""
        return f", {rate:.2f} prompts/s, {(tokens - tokens0) / span:.1f} tokens/s{eta}"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


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
        self.selected = [(task, model.case or model.name) for model, task in _selected_cases(session.items)]

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
        parts = [_session(self.config).stats()] if session_key in self.config.stash else []
        return RunStats.merged(parts + workers, time.perf_counter() - self.started, max(1, len(workers)))

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if hasattr(self.config, "workerinput"):  # an xdist worker: the controller merges
            workeroutput: dict[str, Any] = getattr(self.config, "workeroutput", {})
            if session_key in self.config.stash:
                workeroutput["clue"] = _session(self.config).stats().to_json()  # execnet carries plain data
            return
        # Ctrl-C before any case finished still rewrites the reports (pytest rewrites junit.xml too), so that no
        # folder holds a JUnit of this run next to a report of the previous one
        interrupted = exitstatus == pytest.ExitCode.INTERRUPTED and _session(self.config).planned
        if not self.rows and not self.not_run and not interrupted:
            return  # no clue test ran: a project without clue tests gets no reports
        run = self.config.stash[run_key]
        not_run = self.not_run + (self._stopped() if exitstatus == pytest.ExitCode.INTERRUPTED else [])
        self.finished = run.finish(self.rows, not_run, self.stats(), interrupted=interrupted)
        xmlpath = self.config.option.xmlpath
        if xmlpath and Path(xmlpath).is_file():
            junit.conform(Path(xmlpath))

    @property
    def reports_dir(self) -> Path:
        return _session(self.config).settings.outputs.reports_dir

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.rows:
            return
        tr = terminalreporter
        tr.section("clue results")
        for row in sorted(self.rows, key=lambda r: (r.task, r.case)):
            for line in _summary_lines(row):
                tr.write_line(line)
        for line in _contamination_gaps(self.rows):
            tr.write_line(line)
        stats = self.stats()
        if stats.loads or stats.reused:
            names = sorted(set(stats.loads) | set(stats.reused))
            loads = ", ".join(f"{name} {stats.loads.get(name, 0)}" for name in names)
            reused = ", ".join(f"{name} {stats.reused.get(name, 0)}" for name in names)
            tr.write_line(f"model loads: {loads}; generations reused from the store: {reused}")
        if stats.wall_s > 0:
            tr.write_line(_time_line(stats))
        tr.write_line(f"results JSON: {self.reports_dir / 'clue-results.json'}")
        tr.write_line(f"report: {self.reports_dir / 'index.html'} (summary: {self.reports_dir / 'summary.md'})")
        if self.finished is not None and self.finished.saved_baseline is not None:
            saved = self.finished
            tr.write_line(f"baseline saved: {saved.saved_baseline} ({saved.baseline_entries} task x model entries)")
        if os.environ.get("GITHUB_ACTIONS") == "true":
            for line in _annotations(self.rows):
                tr.write_line(line)


def _time_line(stats: RunStats) -> str:
    """Where the session's time went; the contamination probes' share per task, largest first (their cost)."""
    probes = ""
    if stats.contamination_s:
        tasks = sorted(stats.contamination_task_s.items(), key=lambda item: -item[1])
        each = ", ".join(f"{task} {spent:.1f} s" for task, spent in tasks)
        probes = f" ({stats.contamination_s:.1f} s of it contamination probes" + (f": {each})" if each else ")")
    workers = f" ({stats.workers} workers; backend and scoring times summed over them)" if stats.workers > 1 else ""
    return (
        f"time: {stats.wall_s:.1f} s in this session, {stats.backend_s:.1f} s in model backends{probes}, "
        f"{stats.scoring_s:.1f} s scoring{workers}"
    )


def _summary_lines(row: CaseRow) -> list[str]:
    """A finished case in the terminal summary: its verdict, each metric (with the comparison), its notes."""
    record = row.record
    kind = "baseline " if record.base_kind == "baseline" else ""
    against = f"vs {kind}{record.base_model}" if record.base_model else "(reference, not gated)"
    lines = [f"{row.task} [{row.case}] {against}: {record.verdict.upper()} ({row.outcome}, n={record.n})"]
    for name, m in sorted(row.metrics.items()):
        line = f"    {name:<22} {m.value:.4f}"
        c = m.comparison
        if c is not None:
            line += (
                f"  base {c.base_mean:.4f}  delta {c.delta:+.4f}  CI [{c.ci_low:+.4f}, {c.ci_high:+.4f}]  {c.verdict}"
            )
        lines.append(line)
    if record.sequential is not None:
        stop = record.sequential
        lines.append(f"    sequential: {sequential_text(stop)} (nominal level {stop.level:.2g})")
    lines += [f"    note: {note}" for note in row.diagnostics]
    return lines


def _contamination_gaps(rows: list[CaseRow]) -> list[str]:
    """Cases the contamination diagnostic could not judge, once per reason (a replay or a server without
    log-probabilities is one line, not one per case)."""
    gaps: dict[str, list[str]] = {}
    for row in sorted(rows, key=lambda r: (r.task, r.case)):
        c = row.record.contamination
        if c is not None and c.statistic is None:
            gaps.setdefault(f"{c.status}: {c.reason}", []).append(f"{row.task} [{row.case}]")
    return [f"contamination diagnostic {why} ({', '.join(cases)})" for why, cases in gaps.items()]


def _annotations(rows: list[CaseRow]) -> list[str]:
    """GitHub Actions workflow commands: an error annotation per regressed case (or one whose weights are its
    base's), a warning per inconclusive one and per case the contamination diagnostic flags, so verdicts show in
    the run's summary and on the pull request, not
    only in a passed test's log."""
    out = []
    for row in rows:
        same = row.record.weights_check == "identical"
        verdict = "weights not applied" if same else row.record.verdict
        level = "error" if same else {"regressed": "error", "inconclusive": "warning"}.get(verdict)
        if level is not None:
            title = _escape(f"clue {row.task} [{row.case}]: {verdict}", title=True)
            out.append(f"::{level} title={title}::{_escape(row.record.headline or verdict)}")
        contamination = row.record.contamination
        if contamination is not None and contamination.flagged:
            title = _escape(f"clue {row.task} [{row.case}]: contamination flagged", title=True)
            level = "error" if contamination.mode == "fail" else "warning"
            out.append(f"::{level} title={title}::{_escape(contamination.summary)}")
    return out


def _escape(text: str, *, title: bool = False) -> str:
    """GitHub's escaping for workflow command data (and, in properties such as title, also ':' and ',')."""
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if title else text


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
