"""How an option of clue is declared: one field of a frozen settings section, whose annotation is its type, whose
default is its default, and whose metadata (`option(...)`) holds its help, its check and how a raw value is read.
`clue.config` collects the sections into the one option table, from which the pytest options, the ini keys, the
`[tool.clue]` keys, `clue.evaluate()`'s keywords and the help (the default rendered from the value) all follow.

It lives down here, with no import of clue's, so that a package below `clue.config` (a task's own knobs,
`clue.tasks.options`) can declare options too."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Check = Callable[[Any], str | None]  # the value -> what is wrong with it (after the flag), or None
Parse = Callable[[Any, Path, str], Any]  # (raw value, the layer's folder, the flag) -> the value


@dataclass(frozen=True)
class OptionInfo:
    help: str  # what it does and why; the default is appended from the value (or `shown`)
    metavar: str | None = None
    shown: str | None = None  # how the default reads when the value alone does not say it ("the model config's")
    check: Check | None = None
    parse: Parse | None = None  # for values that are not a plain int / float / str / bool / Path
    repeat: bool = False  # a list: the flag repeats, an ini linelist, a TOML list
    on_off: bool = False  # a bool given as on|off (not a store_true flag)


def option(default: Any, help: str, **info: Any) -> Any:
    """A settings-section field that is an option (see the module docstring)."""
    meta = {"clue": OptionInfo(help, **info)}
    if isinstance(default, dict | list):
        empty = type(default)
        return field(default_factory=empty, metadata=meta)
    return field(default=default, metadata=meta)


def at_least(low: float) -> Check:
    return lambda value: None if value is None or value >= low else f"must be at least {low:g}"


def between(low: float, high: float) -> Check:
    """Inclusive bounds (None, an unset optional value, passes): every number an option takes has both, the upper
    one what a machine can hold or what the quantity can mean (a count of 10**11 resamples is a typo, not a wish)."""
    return lambda value: (
        None if value is None or low <= value <= high else f"must be between {low:g} and {high:g}, got {value:g}"
    )


SEED_MAX = 2**32 - 1  # numpy's and the engines' seeds are 32-bit
COUNT_MAX = 10**8  # samples, items, units: more than any data set holds
TOKENS_MAX = 2**24  # a context length no model has


def one_of(choices: tuple[str, ...]) -> Check:
    return lambda value: None if value in choices else f"{value!r} is not one of {', '.join(choices)}"
