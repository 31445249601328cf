"""How every record is read back: the schema version, the verdict names, `RecordError`, and the field readers that
refuse a malformed value naming the file, the record and the field (describing a bad value, never quoting it)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal, TypeVar, get_args

from clue.errors import ClueError, describe
from clue.statistics.paired import Comparison, Verdict
from clue.statistics.sequential import Stop

SCHEMA_VERSION = 1


JSON = Any  # a value as json.loads gives it


VERDICTS: tuple[str, ...] = get_args(Verdict)


# a case's verdict: the gate's, or "reference" for a model that is only compared against
CaseVerdict = Literal["regressed", "inconclusive", "non-inferior", "improved", "reference"]


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


T = TypeVar("T")


class RecordError(ClueError):
    """A record that is not what its schema says (a results file edited by hand, written by another clue)."""


# what a results record's closed fields may hold: the report draws colours, marks and sections from them
_CHOICES: dict[str, tuple[object, ...]] = {
    "verdict": (*VERDICTS, "reference"),
    "base_kind": (None, "model", "baseline"),
    "weights_check": (None, "identical", "differs", "not checked"),
}


def _listed(allowed: tuple[object, ...]) -> str:
    return ", ".join("null" if a is None else str(a) for a in allowed)


def name_in_message(value: object) -> str:
    """A name read from a file (a task, a model, a hashed sample id) as a message may show it: as written when it is
    shaped like a name, else described (an edited file can hold any text there)."""
    if isinstance(value, str) and _NAME.fullmatch(value):
        return value
    return f"({describe(value)})"


def _get(
    data: Mapping[str, JSON], key: str, kind: type | tuple[type, ...], where: str, *, optional: bool = False
) -> Any:
    if not isinstance(data, Mapping):
        raise RecordError(f"{where}: not a JSON object")
    if key not in data or data[key] is None:
        if optional:
            return None
        raise RecordError(f"{where}: {key} is missing")
    value = data[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind in (int, float) and isinstance(value, bool)):
        raise RecordError(f"{where}: {key} is {describe(value)}, not {getattr(kind, '__name__', kind)}")
    return value


def _scores(data: Mapping[str, JSON], where: str) -> dict[str, float]:
    """A sample's scores table: every value a number."""
    scores = data["scores"]
    bad = [k for k, v in scores.items() if not isinstance(v, int | float) or isinstance(v, bool)]
    if bad:
        raise RecordError(f"{where}: score {name_in_message(bad[0])} is not a number")
    return {str(k): float(v) for k, v in scores.items()}


def _schema(data: JSON, where: str) -> None:
    schema = _get(data, "schema", int, where)
    if schema != SCHEMA_VERSION:
        raise RecordError(f"{where}: schema {schema}; this clue reads schema {SCHEMA_VERSION}")


def _list(data: Mapping[str, JSON], key: str, where: str, parse: Callable[[JSON, str], T]) -> tuple[T, ...]:
    items = _get(data, key, list, where)
    return tuple(parse(item, f"{where}, {key}[{i}]") for i, item in enumerate(items))


@dataclass(frozen=True)
class Count:
    """`n` of `of` samples (outputs identical to the base's, outputs copying a few-shot answer)."""

    n: int
    of: int

    def to_json(self) -> dict[str, int]:
        return {"n": self.n, "of": self.of}

    @classmethod
    def from_json(cls, data: JSON, where: str) -> Count | None:
        if data is None:
            return None
        return cls(_get(data, "n", int, where), _get(data, "of", int, where))


def stop_from_json(data: JSON, where: str) -> Stop | None:
    if data is None:
        return None
    return Stop(
        look=_get(data, "look", int, where),
        looks=_get(data, "looks_planned", int, where),
        units=_get(data, "units_used", int, where),
        units_available=_get(data, "units_available", int, where),
        samples=_get(data, "samples_used", int, where),
        samples_available=_get(data, "samples_available", int, where),
        level=_get(data, "nominal_alpha", float, where),
        boundary=_get(data, "boundary", str, where, optional=True),
    )


def comparison_from_json(data: JSON, where: str) -> Comparison | None:
    if data is None:
        return None
    if not isinstance(data, Mapping):
        raise RecordError(f"{where}: not a JSON object")
    kinds = {f.name: f.type for f in fields(Comparison)}
    given = {k: v for k, v in data.items() if k in kinds}
    for key, value in given.items():
        kind = str(kinds[key])
        if kind == "Verdict":
            ok = value in VERDICTS
        elif kind in ("float", "int"):
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            ok = ok and (kind == "float" or isinstance(value, int))
        else:
            ok = isinstance(value, {"str": str, "bool": bool}.get(kind, object))
        if not ok:
            raise RecordError(f"{where}: {key} is {describe(value)}, not {kind}")
    try:
        return Comparison(**given)
    except TypeError as exc:  # a field missing: the message names it
        raise RecordError(f"{where}: {exc}") from None


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
