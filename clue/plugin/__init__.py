"""The clue pytest plugin (entry point `pytest11: clue`).

It stays inert in a session that collects no clue test: options are registered, nothing is loaded. A clue test
is a function marked `@pytest.mark.clue_task("<task>")` that asks for `clue_model`; the plugin parametrises it
over the model matrix, generates each model's outputs once per session, and `clue_gate` compares the model with
its base model sample by sample.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import pytest

from clue import baseline
from clue.errors import ClueError, ConfigError
from clue.evaluation import evaluate_case
from clue.gate import GateOutcome
from clue.models import ModelSpec
from clue.plugin import xdist
from clue.plugin.options import add_options, resolve
from clue.report import junit
from clue.report import results as results_report
from clue.report.model import diagnostic_lines, sequential_text
from clue.report.render import write_reports
from clue.session import ClueSession
from clue.tasks import get_task
from clue.tasks.base import Task
from clue.types import Generation, TaskResult

session_key = pytest.StashKey[ClueSession]()


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
        configured = bool(session.settings.model or session.settings.base_model or session.settings.matrix)
        if configured:
            session.cases  # noqa: B018 - validate the matrix and baselines now: a usage error, not N test errors
            if not hasattr(config, "workerinput"):  # the controller checks once for every worker
                session.check_models()
    except ConfigError as exc:
        raise pytest.UsageError(f"clue: {exc}") from None
    config.stash[session_key] = session
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
        gpus = xdist.visible_gpus(session.settings.gpus)
        problem = xdist.check_gpu_split(gpus, workers, session.models)
        if problem:
            raise pytest.UsageError(f"clue: {problem}")
        hooks = xdist.XdistHooks(gpus, session.models)
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
    """Free what the session holds: an idle vLLM engine kept for a LoRA entry, the store's connections."""
    global _SESSIONS
    if session_key in config.stash:
        _SESSIONS -= 1
    vllm_backend = sys.modules.get("clue.backends.vllm")
    if vllm_backend is not None:
        vllm_backend.release_all()
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


def pytest_collection_finish(session: pytest.Session) -> None:
    """Plan generation from the selected items only, so `-k medisumcode` loads and runs what it needs."""
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        model = callspec.params.get("clue_model") if callspec is not None else None
        task = _task_name(item)
        if isinstance(model, ModelSpec) and task is not None:
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
    return report


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
    request.node.stash[case_key] = {"task": name, "model": model.name, "case": _case_id(request.node, model)}
    try:
        task = get_task(name)
        data = clue_session.data(task)
    except ClueError as exc:
        _fail(exc)
    if data is None:
        reason = clue_session.missing_data_reason(task)
        settings = clue_session.settings
        if settings.require_data or settings.strict:
            flag = "--clue-require-data" if settings.require_data else "--clue-strict"
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
        settings = clue_session.settings
        case: ModelSpec = request.getfixturevalue("clue_model")
        info = request.node.stash.setdefault(case_key, {"task": result.task, "model": result.model})
        case_id = str(info.get("case") or result.model)

        def headline(outcome: GateOutcome, default: str) -> str:
            styled = request.config.hook.pytest_clue_headline(outcome=outcome, headline=default)
            return str(styled) if styled else default

        try:
            done = evaluate_case(clue_session, case_id, case, result, headline)
        except ClueError as exc:
            _fail(exc)
        path = results_report.write_json(
            results_report.result_path(settings.reports_dir, result.task, case_id), done.record
        )
        info.update(_case_record(done.record, path))
        if settings.save_baseline is not None:
            entry = results_report.write_json(
                results_report.result_path(settings.reports_dir, result.task, case_id, ".baseline-entry"),
                clue_session.baseline_entry(result),
            )
            info["baseline_entry"] = str(entry)
        if done.failure is not None:
            pytest.fail(done.failure, pytrace=False)
        if done.warning is not None:
            warnings.warn(ClueInconclusiveWarning(done.warning), stacklevel=2)
        return done.outcome

    return gate


def _case_id(node: pytest.Item, model: ModelSpec) -> str:
    """The case's test id: the parameter id of `clue_model` (the model's name, or "<model>-vs-<baseline>")."""
    callspec = getattr(node, "callspec", None)
    if callspec is None:
        return model.name
    for case_id, spec in _session(node.config).cases.items():
        if spec == model:
            return case_id
    return model.name


def _case_record(record: dict[str, Any], path: Path) -> dict[str, Any]:
    """What the summary, the annotations and the JUnit properties show of a finished case (plain data: it travels
    from xdist workers on the test report)."""
    metrics: dict[str, dict[str, Any]] = {}
    for name, entry in record["metrics"].items():
        shown: dict[str, Any] = {"value": entry["value"]}
        comparison = entry.get("comparison")
        if comparison:
            for key in ("base_mean", "delta", "ci_low", "ci_high", "p_regression", "margin", "mde"):
                shown[key] = comparison[key]
            shown["regression_alpha"] = comparison["regression_alpha"]
            shown["verdict"] = comparison["verdict"]
        metrics[name] = shown
    return {
        "base": record["base_model"] or "",
        "base_kind": record.get("base_kind") or "",
        "verdict": record["verdict"],
        "n": record["n"],
        "results_json": str(path),
        "identical_outputs": record.get("identical_outputs"),
        "diagnostics": diagnostic_lines(record),
        "weights_check": record.get("weights_check"),
        "sequential": record.get("sequential"),
        "headline": record.get("headline"),
        "metrics": metrics,
    }


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
        if done == 1 or model not in self.first:  # a model's (or a sequential chunk's) first result
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
        """Rates from the work done since the model's first result (its load and first prompt are not a rate),
        and the ETA from them; nothing to say before the second result."""
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
    """Gathers the clue properties of finished tests (xdist workers send theirs to the controller), prints the
    summary table and merges this session's results files into clue-results.json."""

    def __init__(self, config: pytest.Config, xdist_hooks: xdist.XdistHooks | None = None):
        self.config = config
        self.xdist_hooks = xdist_hooks
        self.rows: list[dict[str, Any]] = []
        self.not_run: list[dict[str, str]] = []  # selected cases without a result: skipped or errored, and why
        self.started = time.perf_counter()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        info: dict[str, Any] | None = getattr(report, "clue", None)
        if info is None:
            return
        if report.when == "call" and "verdict" in info:
            row = {**info, "outcome": report.outcome}
            self.rows.append(row)
            junit.add_case_properties(self.config, row)
            self.config.hook.pytest_clue_case_result(config=self.config, case=row)
            return
        if "verdict" in info or report.passed or report.when == "teardown":
            return
        self.not_run.append({"task": info["task"], "model": info.get("case") or info["model"], **_why_not_run(report)})

    def stats(self) -> dict[str, Any]:
        """This process's statistics plus those the xdist workers sent: loads, reuse and time per model."""
        parts = [_session(self.config).stats()] if session_key in self.config.stash else []
        parts += self.xdist_hooks.worker_stats if self.xdist_hooks else []
        merged: dict[str, Any] = {"loads": {}, "reused": {}, "generated": {}, "backend_s": 0.0, "scoring_s": 0.0}
        for part in parts:
            for key in ("loads", "reused", "generated"):
                for model, n in part[key].items():
                    merged[key][model] = merged[key].get(model, 0) + n
            merged["backend_s"] += part["backend_s"]
            merged["scoring_s"] += part["scoring_s"]
        merged["workers"] = max(1, len(self.xdist_hooks.worker_stats) if self.xdist_hooks else 1)
        merged["wall_s"] = time.perf_counter() - self.started
        return merged

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if hasattr(self.config, "workerinput"):  # an xdist worker: the controller merges
            workeroutput: dict[str, Any] = getattr(self.config, "workeroutput", {})
            if session_key in self.config.stash:
                workeroutput["clue"] = _session(self.config).stats()
            return
        # Ctrl-C before any case finished still rewrites the reports (pytest rewrites junit.xml too), so that no
        # folder holds a JUnit of this run next to a report of the previous one
        interrupted = exitstatus == pytest.ExitCode.INTERRUPTED and bool(_session(self.config).plan)
        if not self.rows and not self.not_run and not interrupted:
            return  # no clue test ran: a project without clue tests gets no reports
        settings = _session(self.config).settings
        paths = [Path(str(r["results_json"])) for r in self.rows]
        meta: dict[str, Any] = {"not_run": self.not_run, "strict": settings.strict, "interrupted": interrupted}
        records = results_report.merge(self.reports_dir, paths, **meta)
        write_reports(self.reports_dir, records, **meta)
        results_report.write_json(self.reports_dir / "clue-session.json", self.stats())
        if settings.save_baseline is not None:
            self.saved_baseline = save_baseline(settings.save_baseline, self.rows)
        xmlpath = self.config.option.xmlpath
        if xmlpath and Path(xmlpath).is_file():
            junit.conform(Path(xmlpath))

    @property
    def reports_dir(self) -> Path:
        return _session(self.config).settings.reports_dir

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.rows:
            return
        tr = terminalreporter
        tr.section("clue results")
        for row in sorted(self.rows, key=lambda r: (str(r["task"]), str(r["case"]))):
            kind = "baseline " if row["base_kind"] == "baseline" else ""
            against = f"vs {kind}{row['base']}" if row["base"] else "(reference, not gated)"
            tr.write_line(
                f"{row['task']} [{row['case']}] {against}: {str(row['verdict']).upper()} "
                f"({row['outcome']}, n={row['n']})"
            )
            for name, m in sorted(row["metrics"].items()):
                line = f"    {name:<22} {m['value']:.4f}"
                if "delta" in m:
                    line += (
                        f"  base {m['base_mean']:.4f}  delta {m['delta']:+.4f}"
                        f"  CI [{m['ci_low']:+.4f}, {m['ci_high']:+.4f}]  {m['verdict']}"
                    )
                tr.write_line(line)
            if row.get("sequential"):
                stop = row["sequential"]
                tr.write_line(f"    sequential: {sequential_text(stop)} (nominal level {stop['nominal_alpha']:.2g})")
            for note in row.get("diagnostics") or []:
                tr.write_line(f"    note: {note}")
        stats = self.stats()
        if stats["loads"] or stats["reused"]:
            names = sorted(set(stats["loads"]) | set(stats["reused"]))
            loads = ", ".join(f"{name} {stats['loads'].get(name, 0)}" for name in names)
            reused = ", ".join(f"{name} {stats['reused'].get(name, 0)}" for name in names)
            tr.write_line(f"model loads: {loads}; generations reused from the store: {reused}")
        if stats["wall_s"] > 0:
            tr.write_line(
                f"time: {stats['wall_s']:.1f} s in this session, {stats['backend_s']:.1f} s in model backends, "
                f"{stats['scoring_s']:.1f} s scoring"
                + (
                    f" ({stats['workers']} workers; backend and scoring times summed over them)"
                    if stats["workers"] > 1
                    else ""
                )
            )
        tr.write_line(f"results JSON: {self.reports_dir / 'clue-results.json'}")
        tr.write_line(f"report: {self.reports_dir / 'index.html'} (summary: {self.reports_dir / 'summary.md'})")
        saved = getattr(self, "saved_baseline", None)
        if saved is not None:
            tr.write_line(f"baseline saved: {saved[0]} ({saved[1]} task x model entries)")
        if os.environ.get("GITHUB_ACTIONS") == "true":
            for line in _annotations(self.rows):
                tr.write_line(line)


def save_baseline(path: Path, rows: list[dict[str, Any]]) -> tuple[Path, int]:
    """--clue-save-baseline: the entries the finished cases wrote (one per task x model), merged into one file."""
    entries: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        file = row.get("baseline_entry")
        if file and Path(file).is_file():
            entry = json.loads(Path(file).read_text(encoding="utf-8"))
            entries[(entry["task"], entry["model"])] = entry
    return baseline.write(path, list(entries.values())), len(entries)


def _annotations(rows: list[dict[str, Any]]) -> list[str]:
    """GitHub Actions workflow commands: an error annotation per regressed case (or one whose weights are its
    base's), a warning per inconclusive one, so verdicts show in the run's summary and on the pull request, not
    only in a passed test's log."""
    out = []
    for row in rows:
        same = row.get("weights_check") == "identical"
        verdict = "weights not applied" if same else str(row.get("verdict"))
        level = "error" if same else {"regressed": "error", "inconclusive": "warning"}.get(verdict)
        if level is None:
            continue
        title = _escape(f"clue {row['task']} [{row['case']}]: {verdict}", title=True)
        out.append(f"::{level} title={title}::{_escape(str(row.get('headline', verdict)))}")
    return out


def _escape(text: str, *, title: bool = False) -> str:
    """GitHub's escaping for workflow command data (and, in properties such as title, also ':' and ',')."""
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if title else text


def _why_not_run(report: pytest.TestReport) -> dict[str, str]:
    """status (skipped | error) and the reason, one line: pytest.skip's message, or the failure's (clue's own
    messages carry no traceback and no raw sample id)."""
    if report.skipped:
        longrepr = report.longrepr
        message = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        return {"status": "skipped", "reason": message.removeprefix("Skipped: ")}
    text = report.longreprtext.strip()
    lines = [line for line in text.splitlines() if line.strip()]
    reason = " ".join(lines[:3]) if lines else "failed"
    return {"status": "error", "reason": reason[:500]}
