"""The one option table, collected from the sections' fields: the pytest options and ini keys
(clue/plugin/options.py), the `[tool.clue]` keys and `clue.evaluate()`'s keywords all come from it."""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from clue.config.sections import SECTIONS, Settings
from clue.util.options import OptionInfo


@dataclass(frozen=True)
class Option:
    """One row of the option table, read from its section's field."""

    name: str
    section: str
    kind: type  # int, float, str, bool or Path; a list option's items are read by its `parse`
    default: Any
    info: OptionInfo

    @property
    def flag(self) -> str:
        return "--clue-" + self.name.replace("_", "-")

    @property
    def action(self) -> str | None:
        """How pytest's parser takes it: "store_true" (a flag), "append" (repeatable) or None (one value)."""
        if self.kind is bool and not self.info.on_off:
            return "store_true"
        return "append" if self.info.repeat else None

    @property
    def type(self) -> type:
        """The command line's conversion (numbers; everything else is text read by the layer logic)."""
        return self.kind if self.kind in (int, float) else str

    @property
    def metavar(self) -> str | None:
        return self.info.metavar

    @property
    def help(self) -> str:
        """The help with the default rendered from the value (or `shown`); flags are off by default."""
        if self.action == "store_true":
            return self.info.help
        return f"{self.info.help} (default: {self.shown_default})"

    @property
    def shown_default(self) -> str:
        """The default as the help shows it: `shown`, else the value (none, on/off, the number or text)."""
        if self.info.shown is not None:
            return self.info.shown
        value = self.default
        if value is None or value in ((), {}):
            return "none"
        return ("on" if value else "off") if self.kind is bool else str(value)


def _kind(annotation: Any) -> type:
    """int, float, str, bool or Path from a field's annotation (`X | None` is X); anything else: object."""
    args = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    plain = [a for a in args if a is not type(None)]
    return plain[0] if len(plain) == 1 and plain[0] in (int, float, str, bool, Path) else object


def _section_options(section: str, cls: type) -> list[Option]:
    hints = typing.get_type_hints(cls)
    found = []
    for f in fields(cls):
        info = f.metadata.get("clue")
        if isinstance(info, OptionInfo):
            default = f.default_factory() if callable(f.default_factory) else f.default
            kind = _kind(hints[f.name])
            if kind is object and info.parse is None and not info.repeat:
                raise TypeError(f"option {f.name}: a {hints[f.name]} needs a parse function")
            found.append(Option(f.name, section, kind, default, info))
    return found


def section_types() -> dict[str, type]:
    hints = typing.get_type_hints(Settings)
    return {name: hints[name] for name in SECTIONS}


def collect_options() -> tuple[Option, ...]:
    """The option table, from the sections' fields (an option added to a section appears everywhere)."""
    return tuple(opt for name, cls in section_types().items() for opt in _section_options(name, cls))


OPTIONS: tuple[Option, ...] = collect_options()
