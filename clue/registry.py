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
from collections.abc import Mapping
from functools import cache
from importlib import metadata
from typing import Any

from clue.errors import ConfigError


class Registry:
    """Names -> "module:attribute" for one kind of thing; clue's own entries win over installed ones."""

    def __init__(self, group: str, builtin: Mapping[str, str]):
        self.group = group
        self.builtin = dict(builtin)

    def installed(self) -> dict[str, str]:
        """Entries installed packages declare under this group (not clue's own names)."""
        return {ep.name: ep.value for ep in _entry_points(self.group) if ep.name not in self.builtin}

    def names(self) -> list[str]:
        return [*self.builtin, *sorted(self.installed())]

    def load(self, name: str, kind: str) -> Any:
        target = self.builtin.get(name) or self.installed().get(name)
        if target is None:
            raise ConfigError(f"unknown {kind} {name!r}; known {kind}s: {', '.join(self.names())}")
        module, _, attribute = target.partition(":")
        try:
            return getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"{kind} {name!r} ({target}, entry point group {self.group}): {exc}") from None


@cache
def _entry_points(group: str) -> tuple[metadata.EntryPoint, ...]:
    return tuple(metadata.entry_points(group=group))


TASKS = Registry(
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
)
BACKENDS = Registry(
    "clue.backends",
    {
        "transformers": "clue.backends.transformers:TransformersBackend",
        "vllm": "clue.backends.vllm:VLLMBackend",
        "openai": "clue.backends.openai_server:OpenAIServerBackend",
        "replay": "clue.backends.replay:ReplayBackend",
    },
)
# extra metrics for existing tasks: objects with `tasks` (task names), `spec` (a MetricSpec) and
# `score(sample, generation) -> float` (clue.metrics.extra.ExtraMetric)
METRICS = Registry("clue.metrics", {})
