"""What the plugin's parts share: the run's session and its files in the config's stash, a test's case record in its
item's stash, and how a clue test is recognised, named and failed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NoReturn

import pytest

from clue.models.matrix import ModelSpec
from clue.run.outputs import Run
from clue.run.session import ClueSession

session_key = pytest.StashKey[ClueSession]()  # the run's session, in the config's stash
run_key = pytest.StashKey[Run]()  # its files, likewise


def session_of(config: pytest.Config) -> ClueSession:
    return config.stash[session_key]


def fail_cleanly(exc: Exception, prefix: str = "") -> NoReturn:
    """Fail with clue's own message only: no traceback, no chained "during handling" duplicate."""
    message = prefix + str(exc)
    del exc
    raise pytest.fail.Exception(message, pytrace=False) from None


def task_name(node: pytest.Item | pytest.Function) -> str | None:
    marker = node.get_closest_marker("clue_task")
    if marker is None:
        return None
    if len(marker.args) != 1 or not isinstance(marker.args[0], str):
        raise pytest.UsageError(f"{node.nodeid}: use @pytest.mark.clue_task('<task name>')")
    return marker.args[0]


def selected_cases(items: list[pytest.Item]) -> Iterator[tuple[ModelSpec, str]]:
    """(case, task) of every selected clue item."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        model = callspec.params.get("clue_model") if callspec is not None else None
        task = task_name(item)
        if isinstance(model, ModelSpec) and task is not None:
            yield model, task


case_key = pytest.StashKey[dict[str, Any]]()


def is_clue_item(item: pytest.Item) -> bool:
    return item.get_closest_marker("clue_task") is not None or "clue_model" in getattr(item, "fixturenames", ())
