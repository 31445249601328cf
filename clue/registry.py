"""One registry for tasks, metrics and backends: clue's own, plus what installed packages declare under the
entry-point groups `clue.tasks`, `clue.metrics` and `clue.backends`. Entries are "module:attribute" strings,
imported only when used (lm-evaluation-harness style), so `import clue` imports no task, engine or model.

A third-party package adds a task with one file and one line in its pyproject.toml:

    [project.entry-points."clue.tasks"]
    hospital_nli = "hospital_clue:HospitalNLI"

and it runs as `pytest benchmarks -k hospital_nli`, with the same gate and report as CLUE's own tasks.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from functools import cache
from importlib import metadata
from typing import TYPE_CHECKING, Generic, TypeVar, cast

from clue.errors import ConfigError

if TYPE_CHECKING:
    from clue.backends.base import Backend
    from clue.tasks.base import Task

T = TypeVar("T")


class Registry(Generic[T]):
    """Names -> "module:attribute" for one kind of thing; clue's own entries win over installed ones. What a name
    loads is checked (`accepts`) before it is used: an entry point naming the wrong object is a ConfigError that
    names the entry, not an AttributeError somewhere in a run."""

    def __init__(
        self, group: str, builtin: Mapping[str, str], accepts: Callable[[object], bool], expected: str
    ) -> None:
        self.group = group
        self.builtin = dict(builtin)
        self.accepts, self.expected = accepts, expected

    def installed(self) -> dict[str, str]:
        """Entries installed packages declare under this group (not clue's own names)."""
        return {ep.name: ep.value for ep in _entry_points(self.group) if ep.name not in self.builtin}

    def names(self) -> list[str]:
        return [*self.builtin, *sorted(self.installed())]

    def load(self, name: str, kind: str) -> T:
        target = self.builtin.get(name) or self.installed().get(name)
        if target is None:
            raise ConfigError(f"unknown {kind} {name!r}; known {kind}s: {', '.join(self.names())}")
        module, _, attribute = target.partition(":")
        where = f"{kind} {name!r} ({target}, entry point group {self.group})"
        try:
            found = getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if not self.accepts(found):
            raise ConfigError(f"{where}: is {found!r}, not {self.expected}")
        return cast(T, found)


def _task_class(found: object) -> bool:
    from clue.tasks.base import Task

    return isinstance(found, type) and issubclass(found, Task)


def _backend_class(found: object) -> bool:
    """A class with the Backend protocol's methods (clue/backends/base.py); the protocol is structural."""
    methods = ("generate", "fingerprint", "token_counter", "describe", "close")
    return isinstance(found, type) and all(callable(getattr(found, m, None)) for m in methods)


@cache
def _entry_points(group: str) -> tuple[metadata.EntryPoint, ...]:
    return tuple(metadata.entry_points(group=group))


TASKS: Registry[type[Task]] = Registry(
    "clue.tasks",
    {
        "mednli": "clue.tasks.mednli:MedNLI",
        "meqsum": "clue.tasks.meqsum:MeQSum",
        "problem_summary": "clue.tasks.problem_summary:ProblemSummary",
        "longhealth_task1": "clue.tasks.longhealth:LongHealthTask1",
        "longhealth_task2": "clue.tasks.longhealth:LongHealthTask2",
        "longhealth_task3": "clue.tasks.longhealth:LongHealthTask3",
        "medisumqa": "clue.tasks.medisumqa:MeDiSumQA",
        "medisumcode": "clue.tasks.medisumcode:MeDiSumCode",
    },
    _task_class,
    "a subclass of clue.tasks.base.Task",
)
BACKENDS: Registry[Callable[..., Backend]] = Registry(
    "clue.backends",
    {
        "transformers": "clue.backends.transformers:TransformersBackend",
        "vllm": "clue.backends.vllm:VLLMBackend",
        "openai": "clue.backends.openai_server:OpenAIServerBackend",
        "replay": "clue.backends.replay:ReplayBackend",
    },
    _backend_class,
    "a backend class (generate, fingerprint, token_counter, describe, close: clue.backends.base.Backend)",
)
# extra metrics for existing tasks: clue.metrics.extra.METRICS (entry-point group clue.metrics)
