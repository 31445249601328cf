"""The clue pytest plugin (entry point `pytest11: clue`).

It stays inert in a session that collects no clue test: options are registered, nothing is loaded. A clue test
is a function marked `@pytest.mark.clue_task("<task>")` that asks for `clue_model`; the plugin parametrises it
over the model matrix, generates each model's outputs once per session, and `clue_gate` compares the model with
its base model sample by sample.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import pytest

from clue.errors import ClueError, ConfigError
from clue.models import ModelSpec
from clue.plugin import xdist
from clue.plugin.gate import GateOutcome, run_gate
from clue.plugin.options import add_options, resolve
from clue.plugin.session import ClueSession
from clue.report import results as results_report
from clue.report.render import write_reports
from clue.tasks import get_task
from clue.tasks.base import Task
from clue.types import Generation, TaskResult

session_key = pytest.StashKey[ClueSession]()


class ClueInconclusiveWarning(UserWarning):
    """A comparison could not show non-inferiority (nor a regression): too few samples or too much noise."""


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "clue_task(name): the CLUE task this test evaluates (mednli, medisumcode, ...)")
    if hasattr(config, "workerinput"):
        xdist.configure_worker(config)  # GPUs and threads first: nothing has imported torch yet
    try:
        session = ClueSession(resolve(config))
        configured = bool(session.settings.model or session.settings.base_model or session.settings.matrix)
        if configured:
            session.models  # noqa: B018 - validate the matrix now: a bad entry is a usage error, not 2 test errors
    except ConfigError as exc:
        raise pytest.UsageError(f"clue: {exc}") from None
    config.stash[session_key] = session
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
        models = session.models
    except ConfigError as exc:
        # no model configured at all: one failing case that says how to configure one
        metafunc.parametrize("clue_model", [pytest.param(str(exc), id="no-model")])
        return
    metafunc.parametrize("clue_model", list(models.values()), ids=list(models))


def pytest_collection_finish(session: pytest.Session) -> None:
    """Plan generation from the selected items only, so `-k medisumcode` loads and runs what it needs."""
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        model = callspec.params.get("clue_model") if callspec is not None else None
        task = _task_name(item)
        if isinstance(model, ModelSpec) and task is not None:
            _session(session.config).need(model.name, task)


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
    request.node.user_properties.append(("clue.case", f"{name}\t{model.name}"))
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
    """Call with a TaskResult: records metrics, writes the results JSON, and fails if the model regressed
    against its base model (warns, or fails under --clue-strict, when the comparison is inconclusive)."""

    def record_property(name: str, value: object) -> None:
        # what pytest's record_property fixture does, without its per-test warning under junit_family xunit2
        # (which has no per-test properties: the summary says once where the metrics are instead)
        request.node.user_properties.append((name, value))

    def gate(result: TaskResult) -> GateOutcome | None:
        settings = clue_session.settings
        spec = clue_session.models[result.model]
        outcome = None
        try:
            if spec.base:
                outcome = run_gate(result, clue_session.result(spec.base, result.task), settings)
        except ClueError as exc:
            _fail(exc, f"base model {spec.base!r}: ")
        data = clue_session.data(get_task(result.task))
        assert data is not None  # the result exists, so the data did
        record = results_report.result_record(
            result,
            outcome,
            samples=data.scored,
            show_samples=settings.report_samples,
            alpha=settings.alpha,
            resamples=settings.resamples,
            seed=settings.bootstrap_seed,
        )
        path = results_report.write_json(
            results_report.result_path(settings.reports_dir, result.task, result.model), record
        )
        record_property("clue.task", result.task)
        record_property("clue.model", result.model)
        record_property("clue.base_model", spec.base or "")
        record_property("clue.verdict", record["verdict"])
        record_property("clue.n", result.n)
        record_property("clue.results_json", str(path))
        for name, entry in record["metrics"].items():
            record_property(f"clue.{name}", round(entry["value"], 6))
            comparison = entry.get("comparison")
            if comparison:
                record_property(f"clue.{name}.base", round(comparison["base_mean"], 6))
                record_property(f"clue.{name}.delta", round(comparison["delta"], 6))
                record_property(f"clue.{name}.ci_low", round(comparison["ci_low"], 6))
                record_property(f"clue.{name}.ci_high", round(comparison["ci_high"], 6))
                # significant digits, not decimals: a p-value of 1.7e-09 must not read 0.0
                record_property(f"clue.{name}.p_regression", float(f"{comparison['p_regression']:.6g}"))
                record_property(f"clue.{name}.margin", comparison["margin"])
                record_property(f"clue.{name}.mde", round(comparison["mde"], 6))
                record_property(f"clue.{name}.regression_alpha", float(f"{comparison['regression_alpha']:.6g}"))
                record_property(f"clue.{name}.verdict", comparison["verdict"])
        if outcome is None:
            return None
        record_property("clue.headline", outcome.headline())
        if outcome.regressed:
            pytest.fail("REGRESSED " + outcome.message(), pytrace=False)
        if outcome.inconclusive:
            text = "INCONCLUSIVE " + outcome.message()
            if settings.strict:
                pytest.fail(text + "\n(--clue-strict: inconclusive comparisons fail)", pytrace=False)
            warnings.warn(ClueInconclusiveWarning(text), stacklevel=2)
        return outcome

    return gate


_META = {
    "clue.task",
    "clue.model",
    "clue.base_model",
    "clue.verdict",
    "clue.n",
    "clue.results_json",
    "clue.case",
    "clue.headline",
}


class TerminalProgress:
    """Generation progress on the terminal while a test generates: all of a model's generation happens inside its
    first test, where pytest captures output, so a progress bar would show only with -s. This writes through the
    terminal reporter with capture suspended: on a terminal one line per model, rewritten at most twice a second;
    in a CI log a line every 30 s. Quiet under -q; never part of the captured output, so never in JUnit."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.last = 0.0

    def __call__(self, model: str, engine: str, done: int, total: int, seconds: float) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        if reporter is None or capture is None:
            return
        tty = reporter.isatty()
        now = time.perf_counter()
        finished = done == total
        if not finished and now - self.last < (0.5 if tty else 30.0):
            return
        self.last = now
        rate = done / seconds if seconds > 0 else 0.0
        eta = f", ETA {_duration((total - done) / rate)}" if rate > 0 and not finished else ""
        line = f"clue: {model} ({engine}): {done}/{total} prompts, {rate:.1f}/s{eta}"
        if finished:
            line += f", done in {_duration(seconds)}"
        with capture.global_and_fixture_disabled():
            if tty:
                reporter.write("\r" + line.ljust(100) + ("\n" if finished else ""), flush=True)
            else:
                reporter.write_line(line)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class ResultsCollector:
    """Gathers the clue properties of finished tests (xdist workers send theirs to the controller), prints the
    summary table and merges this session's results files into clue-results.json."""

    def __init__(self, config: pytest.Config, xdist_hooks: xdist.XdistHooks | None = None):
        self.config = config
        self.xdist_hooks = xdist_hooks
        self.rows: list[dict[str, object]] = []
        self.not_run: list[dict[str, str]] = []  # selected cases without a result: skipped or errored, and why
        self.started = time.perf_counter()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props = {k: v for k, v in report.user_properties if isinstance(k, str) and k.startswith("clue.")}
        if report.when == "call" and "clue.task" in props:
            self.rows.append({**props, "outcome": report.outcome})
            return
        if "clue.case" not in props or "clue.task" in props or report.passed or report.when == "teardown":
            return
        task, model = str(props["clue.case"]).split("\t", 1)
        self.not_run.append({"task": task, "model": model, **_why_not_run(report)})

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
        strict = _session(self.config).settings.strict
        paths = [Path(str(r["clue.results_json"])) for r in self.rows]
        meta: dict[str, Any] = {"not_run": self.not_run, "strict": strict, "interrupted": interrupted}
        records = results_report.merge(self.reports_dir, paths, **meta)
        write_reports(self.reports_dir, records, **meta)
        results_report.write_json(self.reports_dir / "clue-session.json", self.stats())

    @property
    def reports_dir(self) -> Path:
        return _session(self.config).settings.reports_dir

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.rows:
            return
        tr = terminalreporter
        tr.section("clue results")
        for row in sorted(self.rows, key=lambda r: (str(r["clue.task"]), str(r["clue.model"]))):
            base = row.get("clue.base_model")
            against = f"vs {base}" if base else "(reference, not gated)"
            tr.write_line(
                f"{row['clue.task']} [{row['clue.model']}] {against}: {str(row['clue.verdict']).upper()} "
                f"({row['outcome']}, n={row['clue.n']})"
            )
            for key in sorted(k for k in row if k.count(".") == 1 and k not in _META):
                line = f"    {key.split('.', 1)[1]:<22} {_num(row[key]):.4f}"
                if f"{key}.delta" in row:
                    line += (
                        f"  base {_num(row[f'{key}.base']):.4f}  delta {_num(row[f'{key}.delta']):+.4f}"
                        f"  CI [{_num(row[f'{key}.ci_low']):+.4f}, {_num(row[f'{key}.ci_high']):+.4f}]"
                        f"  {row[f'{key}.verdict']}"
                    )
                tr.write_line(line)
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
        if os.environ.get("GITHUB_ACTIONS") == "true":
            for line in _annotations(self.rows):
                tr.write_line(line)
        family = self.config.getini("junit_family")
        if self.config.option.xmlpath and family not in ("xunit1", "legacy"):
            tr.write_line(
                f"note: junit_family = {family} has no per-test <properties>, so the JUnit XML carries verdicts "
                "but not clue's metrics; they are in clue-results.json (set junit_family = xunit1 to get them as "
                "properties)"
            )


def _annotations(rows: list[dict[str, object]]) -> list[str]:
    """GitHub Actions workflow commands: an error annotation per regressed case, a warning per inconclusive one,
    so verdicts show in the run's summary and on the pull request, not only in a passed test's log."""
    out = []
    for row in rows:
        level = {"regressed": "error", "inconclusive": "warning"}.get(str(row.get("clue.verdict")))
        if level is None:
            continue
        title = _escape(f"clue {row['clue.task']} [{row['clue.model']}]: {row['clue.verdict']}", title=True)
        out.append(f"::{level} title={title}::{_escape(str(row.get('clue.headline', row['clue.verdict'])))}")
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


def _num(value: object) -> float:
    return float(value)  # type: ignore[arg-type]
