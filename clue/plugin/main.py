"""The hooks that set a run up and carry its cases: options, configuration (the session, its checks, xdist, the
progress line, the results collector), SIGTERM, parametrisation over the model matrix, planning from the selected
items, and each clue test's report (its record attached, its traceback withheld)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from clue.errors import ConfigError, exception_text
from clue.plugin import xdist
from clue.plugin.collector import ResultsCollector
from clue.plugin.options import add_options, resolve
from clue.plugin.state import case_key, is_clue_item, run_key, selected_cases, session_key, session_of
from clue.plugin.terminal import TerminalProgress
from clue.run.outputs import Run
from clue.run.session import ClueSession


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
            session.plan.cases  # noqa: B018 - validate the matrix and baselines now: a usage error, not N test errors
            if not hasattr(config, "workerinput"):  # the controller checks once for every worker
                session.plan.check_models()
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
        session.generator.progress = TerminalProgress(config)
    hooks = None
    workers = int(getattr(config.option, "numprocesses", 0) or 0)
    if workers and not hasattr(config, "workerinput") and configured:
        gpus = xdist.visible_gpus(session.settings.generation.gpus)
        problem = xdist.check_gpu_split(gpus, workers, session.plan.models)
        if problem:
            raise pytest.UsageError(f"clue: {problem}")
        hooks = xdist.XdistHooks(gpus, session.plan.models, session.plan.cases)
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


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "clue_model" not in metafunc.fixturenames:
        return
    session = session_of(metafunc.config)
    try:
        cases = session.plan.cases
    except ConfigError as exc:
        # no model configured at all: one failing case that says how to configure one
        metafunc.parametrize("clue_model", [pytest.param(str(exc), id="no-model")])
        return
    metafunc.parametrize("clue_model", list(cases.values()), ids=list(cases))


def pytest_collection_finish(session: pytest.Session) -> None:
    """Plan generation from the selected items only, so `-k medisumcode` loads and runs what it needs."""
    plan = session_of(session.config).plan
    for model, task in selected_cases(session.items):
        plan.need(model, task)
    if hasattr(session.config, "workerinput"):
        return  # an xdist worker's usage error is xdist's internal error: the generator refuses each case instead
    try:
        plan.check_data_use()  # before any fixture loads or connects: credentialed prompts stay where allowed
    except ConfigError as exc:
        raise pytest.UsageError(f"clue: {exc}") from None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A clue case's record rides on its reports as `report.clue` (xdist sends it to the controller with the
    report), so results reach the summary, the reports and the JUnit properties as data, not as property
    strings parsed back."""
    report = yield
    info = item.stash.get(case_key, None)
    if info is not None:
        report.clue = dict(info)
    if report.failed and call.excinfo is not None and is_clue_item(item):
        session = item.config.stash.get(session_key, None)
        if session is None or not session.settings.outputs.debug:
            report.longrepr = _clean_failure(call.excinfo)
            report.sections = []  # captured output of a clue test may echo a prompt or an output, as locals do
    return report


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
