"""The fixtures a clue test asks for: the session, the task (its data checked), the model's generations and result,
and `clue_gate`, which evaluates the case and fails, warns or passes its test."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import pytest

from clue.errors import ClueError
from clue.models.matrix import ModelSpec
from clue.plugin.state import case_key, fail_cleanly, run_key, session_of, task_name
from clue.run.evaluation import evaluate_case
from clue.run.gate import GateOutcome
from clue.run.session import ClueSession
from clue.tasks.base import Task
from clue.types import Generation, TaskResult


class ClueInconclusiveWarning(UserWarning):
    """A comparison could not show non-inferiority (nor a regression): too few samples or too much noise."""


@pytest.fixture(scope="session")
def clue_session(pytestconfig: pytest.Config) -> ClueSession:
    """The session's models, data, generations and scores."""
    return session_of(pytestconfig)


@pytest.fixture
def clue_task(request: pytest.FixtureRequest, clue_session: ClueSession) -> Task:
    """The task named by the test's `clue_task` marker, with its data checked (skip if absent, fail if invalid)."""
    model = request.getfixturevalue("clue_model")
    if isinstance(model, str):
        pytest.fail(f"clue: {model}", pytrace=False)
    name = task_name(request.node)
    if name is None:
        raise pytest.UsageError(f"{request.node.nodeid}: mark the test with @pytest.mark.clue_task('<task>')")
    # before anything can skip or fail: the reports list every selected case of this run, with or without a result
    request.node.stash[case_key] = {"task": name, "model": model.name, "case": model.case or model.name}
    try:
        task = clue_session.catalog.task(name)
        data = clue_session.catalog.data(task)
    except ClueError as exc:
        fail_cleanly(exc)
    if data is None:
        reason = clue_session.catalog.missing_data_reason(task)
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
        return clue_session.generator.generations(clue_model.name, clue_task.name)
    except ClueError as exc:
        fail_cleanly(exc)


@pytest.fixture
def clue_result(
    clue_task: Task,
    clue_model: ModelSpec,
    clue_session: ClueSession,
    clue_generations: tuple[Generation, ...],
) -> TaskResult:
    """Per-sample scores and aggregates of this model on this task."""
    try:
        return clue_session.generator.result(clue_model.name, clue_task.name)
    except ClueError as exc:
        fail_cleanly(exc)


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
            fail_cleanly(exc)
        info["row"] = request.config.stash[run_key].case_finished(done).to_json()
        if done.failure is not None:
            pytest.fail(done.failure, pytrace=False)
        if done.warning is not None:
            warnings.warn(ClueInconclusiveWarning(done.warning), stacklevel=2)
        return done.outcome

    return gate
