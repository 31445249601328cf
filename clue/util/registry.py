"""The lazy registry behind clue's tasks (`clue.tasks.registry`), backends (`clue.backends.registry`) and extra
metrics (`clue.metrics.extra`): clue's own names plus what installed packages declare under an entry-point group.
Entries are "module:attribute" strings, imported only when used (lm-evaluation-harness style), so `import clue`
imports no task, engine or model; what a name loads is checked before it is used."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from functools import cache
from importlib import metadata
from typing import Generic, TypeVar, cast

from clue.errors import ConfigError

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


@cache
def _entry_points(group: str) -> tuple[metadata.EntryPoint, ...]:
    return tuple(metadata.entry_points(group=group))
