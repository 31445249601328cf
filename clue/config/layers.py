"""Settings from layers of sources: the first layer that sets an option wins (pytest: command line >
`[tool.pytest.ini_options]` (`clue_*` keys) > `[tool.clue]` in pyproject.toml > the built-in default); margins
merge key by key. Relative paths are taken from the layer's folder (the invocation directory for the command line,
the rootdir for configuration files). Each raw value is read and checked here, naming the option and the layer."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from clue.config.sections import BERTSCORE_DEFAULT_MODEL, SECTIONS, Settings, default_cpu_threads
from clue.config.table import Option, collect_options, section_types
from clue.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def tool_clue(rootpath: Path) -> dict[str, Any]:
    """The [tool.clue] table of rootpath/pyproject.toml ({} when there is none)."""
    pyproject = rootpath / "pyproject.toml"
    if not pyproject.is_file():
        return {}
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{pyproject}: invalid TOML: {exc}") from None
    table = data.get("tool", {}).get("clue", {})
    return table if isinstance(table, dict) else {}


def _convert(where: str, value: Any, kind: Any) -> Any:
    """A number from a layer's value (a string from the command line or ini, a number from TOML or Python);
    a value that is not one, not finite, or an int option given a fraction is a ConfigError, never truncated."""
    try:
        if isinstance(value, bool) or (kind is int and isinstance(value, float) and not value.is_integer()):
            raise ValueError
        number = kind(value.strip() if isinstance(value, str) else value)
        if not math.isfinite(number):
            raise ValueError
        return number
    except (TypeError, ValueError, OverflowError):
        noun = "an integer" if kind is int else "a finite number"
        raise ConfigError(f"{where} expects {noun}, got {_shown(value)}") from None


def _shown(value: Any) -> str:
    """A raw value as an error names it: its type and (shortened) text."""
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


ON_OFF = {"on": True, "true": True, "off": False, "false": False}  # an on|off option's spellings, any case


def _margins(layers: Sequence[Layer]) -> tuple[float | None, dict[str, float]]:
    """The global margin and per-metric margins, merged key by key from the lowest layer up ([tool.clue]'s `margin`
    and `[tool.clue.margins]`, then ini `clue_margin` lines, then --clue-margin): a higher layer overrides only the
    keys it sets; one layer setting the global margin twice, or one metric twice, is refused (which would win?)."""
    margin: float | None = None
    margins: dict[str, float] = {}
    for layer in reversed(layers):
        table = layer.values.get("margins")
        if table is not None and not isinstance(table, Mapping):
            raise ConfigError(f"{layer.where('margins')} expects a table of METRIC = VALUE, got {_shown(table)}")
        for key, value in (table or {}).items():
            margins[str(key)] = _number(layer, f"margins.{key}", value, float)
        seen: set[str | None] = set()
        for metric, value in _margin_items(layer):
            if metric in seen:
                raise ConfigError(
                    f"{layer.where('margin')}: {'the global margin' if metric is None else metric} is given twice"
                )
            seen.add(metric)
            if metric is None:
                margin = value
            else:
                margins[metric] = value
    if margin is not None and not 0 <= margin < 1:
        raise ConfigError(f"clue margin: must be in [0, 1) (a difference on the metrics' 0-1 scale), got {margin}")
    return margin, margins


def _margin_items(layer: Layer) -> list[tuple[str | None, float]]:
    """A layer's `margin` values as (metric or None for the global margin, value)."""
    items = layer.values.get("margin")
    out: list[tuple[str | None, float]] = []
    for item in items if isinstance(items, list | tuple) else [] if items is None else [items]:
        if isinstance(item, str):
            metric, sep, text = item.rpartition("=")
            if sep and not metric.strip():
                raise ConfigError(f"{layer.where('margin')}: {item!r} names no metric (METRIC=VALUE or VALUE)")
            name = metric.strip() if sep else None
            out.append((name, _convert(layer.where("margin" if name is None else f"margin {name}"), text, float)))
        else:
            out.append((None, _number(layer, "margin", item, float)))
    return out


def _number(layer: Layer, key: str, value: Any, kind: type) -> Any:
    """A number from a layer: text only from the command line and ini; a typed layer (TOML, Python) gives a number
    as a number, and a string, a list or a table there is refused."""
    if not layer.text and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise ConfigError(f"{layer.where(key)} expects a number, got {_shown(value)}")
    return _convert(layer.where(key), value, kind)


@dataclass(frozen=True)
class Layer:
    """One source of settings: option name -> value (`margins`: a per-metric table), and the folder its relative
    paths are relative to. A value of None, "" or [] is not set. `style` is how the layer spells an option and what
    types it gives: "cli" and "ini" give text (pytest has converted numbers and ini booleans), "toml" and "python"
    give typed values, which must have the option's type."""

    label: str  # "command line", "ini", "[tool.clue]", "evaluate()"
    values: Mapping[str, Any]
    base: Path
    style: Literal["cli", "ini", "toml", "python"] = "python"

    @property
    def text(self) -> bool:
        return self.style in ("cli", "ini")

    def where(self, name: str) -> str:
        """The option as this layer spells it, after the layer: `command line --clue-limit`, `ini clue_limit`,
        `pyproject.toml [tool.clue] limit`, `evaluate() limit=`."""
        spelled = {
            "cli": "--clue-" + name.replace("_", "-"),
            "ini": "clue_" + name,
            "toml": name,
            "python": name + "=",
        }[self.style]
        return f"{self.label} {spelled}"


def _is_set(value: Any) -> bool:
    return value is not None and value != [] and value != ""  # `0 in (None, [], "")` is False: 0 is a value


def settings_from(rootpath: Path, layers: Sequence[Layer]) -> Settings:
    """Settings from layers, highest precedence first (the command line, ini options, [tool.clue]; or evaluate()'s
    arguments, [tool.clue]), each option taken from the first layer that sets it (raises ConfigError)."""
    options = collect_options()
    known = {o.name for o in options} | {"margins"}
    for layer in layers:
        unknown = set(layer.values) - known
        if unknown:
            raise ConfigError(f"{layer.label}: unknown clue option(s) {', '.join(sorted(unknown))}")
    values: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    for opt in options:
        if opt.name != "margin":  # margins merge key by key across layers: _checked_margins
            values[opt.section][opt.name] = _value(opt, rootpath, layers)
    values["gate"]["margin"], values["gate"]["margins"] = _checked_margins(layers)
    sections = {name: cls(**values[name]) for name, cls in section_types().items()}
    settings = _derived(Settings(rootpath, **sections))
    for opt in options:
        problem = opt.info.check(getattr(getattr(settings, opt.section), opt.name)) if opt.info.check else None
        if problem:
            raise ConfigError(f"{opt.flag} {problem}")
    _cross_checks(settings)
    return settings


def _value(opt: Option, rootpath: Path, layers: Sequence[Layer]) -> Any:
    """The option's value from the first layer that sets it (paths resolved against that layer's folder), else its
    default."""
    source = next((la for la in layers if _is_set(la.values.get(opt.name))), None)
    if source is None:
        if opt.info.parse is not None and opt.info.repeat:
            return opt.info.parse(None, rootpath, opt.flag)
        return (rootpath / opt.default).resolve() if isinstance(opt.default, Path) else opt.default
    raw, base = source.values[opt.name], source.base
    if opt.info.parse is not None:
        try:
            value = opt.info.parse(_parse_input(opt, source, raw), base, opt.flag)
        except (ValueError, OSError) as exc:  # a path the system cannot take (a NUL byte, a name too long)
            raise ConfigError(f"{source.where(opt.name)}: {exc}") from None
        if opt.name in ("data", "contamination_reference") and source.label in _NAMED_NOW:
            _require_files(value, opt.flag)
        return value
    return _typed(opt, source, raw, base)


def _typed(opt: Option, layer: Layer, raw: Any, base: Path) -> Any:
    """A plain option's value of its declared type: a boolean is a boolean (an on|off option also takes those
    words), a number a number (text only from the command line and ini), a path or a name text; anything else is a
    ConfigError naming the option as the layer spells it."""
    where = layer.where(opt.name)
    if opt.kind is bool:
        if isinstance(raw, bool):
            return raw
        if opt.info.on_off and isinstance(raw, str) and raw.strip().lower() in ON_OFF:
            return ON_OFF[raw.strip().lower()]
        raise ConfigError(f"{where} expects {'on or off' if opt.info.on_off else 'true or false'}, got {_shown(raw)}")
    if opt.kind in (int, float):
        return _number(layer, opt.name, raw, opt.kind)
    if opt.kind is Path and isinstance(raw, str | os.PathLike) and str(raw).strip():
        try:
            return (base / raw).resolve()
        except (ValueError, OSError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
    if opt.kind is str and isinstance(raw, str):
        return raw
    raise ConfigError(f"{where} expects {'a path' if opt.kind is Path else 'text'}, got {_shown(raw)}")


def _parse_input(opt: Option, layer: Layer, raw: Any) -> Any:
    """What an option with its own reader (`parse`) is handed: text, or for a repeatable one a list of text (a
    table TASK = FILE where it takes TASK=FILE items); anything else is a ConfigError naming the option."""
    where = layer.where(opt.name)
    if not opt.info.repeat:
        if isinstance(raw, str | os.PathLike):
            return str(raw)
        raise ConfigError(f"{where} expects text, got {_shown(raw)}")
    if isinstance(raw, Mapping) and not layer.text:
        raw = _pairs(where, raw)
    items = list(raw) if isinstance(raw, list | tuple) else [raw]
    for item in items:
        if not isinstance(item, str | os.PathLike):
            raise ConfigError(f"{where} expects text or a list of text, got {_shown(item)}")
    return [str(item) for item in items]


def _pairs(where: str, table: Mapping[Any, Any]) -> list[str]:
    """A table TASK = FILE (a TOML table, a Python dict) as TASK=FILE items."""
    for key, value in table.items():
        if not isinstance(key, str) or not isinstance(value, str | os.PathLike):
            raise ConfigError(f"{where} expects a table of TASK = FILE, got {key!r} = {_shown(value)}")
    return [f"{key}={value}" for key, value in table.items()]


def _derived(settings: Settings) -> Settings:
    """Defaults that depend on the machine or on another option: the CPU threads (0: OMP_NUM_THREADS or half the
    cores) and BERTScore's layer (8 for CLUE's SciBERT)."""
    generation, scoring = settings.generation, settings.scoring
    if not generation.cpu_threads:
        settings = replace(settings, generation=replace(generation, cpu_threads=default_cpu_threads()))
    if scoring.bertscore_layers is None and scoring.bertscore_model == BERTSCORE_DEFAULT_MODEL:
        settings = replace(settings, scoring=replace(scoring, bertscore_layers=8))
    return settings


def _cross_checks(settings: Settings) -> None:
    """What no option's own check can see: combinations that cannot run."""
    if settings.gate.sequential and settings.outputs.save_baseline is not None:
        raise ConfigError(
            "--clue-save-baseline with --clue-sequential: a sequential run scores only the samples it generated "
            "before stopping; save baselines from a full run"
        )
    if settings.gate.contamination == "off" and settings.gate.contamination_reference:
        raise ConfigError(
            "--clue-contamination-reference with --clue-contamination off: the reference items would not be "
            "scored; drop one of the two"
        )


# layers whose data files were named for this run: a file that is not there is a typo, not a data set to skip (a
# configuration file may name one a checkout does not have, e.g. the public MeQSum file: skipped with a message)
_NAMED_NOW = ("command line", "evaluate()")


def _require_files(files: dict[str, Path], flag: str) -> None:
    """Files named on the command line (or to evaluate()) exist: a typo there is a usage error, not a skipped
    task or a diagnostic without its reference items."""
    missing = sorted({str(path) for path in files.values() if not path.is_file()})
    if missing:
        raise ConfigError(f"{flag}: no such file: {', '.join(missing)}")


def _checked_margins(layers: Sequence[Layer]) -> tuple[float | None, dict[str, float]]:
    """The margins, each metric's known and within its scale: a margin as wide as the metric's range can never be
    crossed, so nothing could regress."""
    margin, margins = _margins(layers)
    if margins:
        from clue.tasks import metric_specs

        known = metric_specs()
        if set(margins) - set(known):
            raise ConfigError(
                f"--clue-margin: unknown metric(s) {', '.join(sorted(set(margins) - set(known)))}; "
                f"metrics: {', '.join(sorted(known))}"
            )
        for name, value in margins.items():
            spec = known[name]
            width = 1.0 if spec.kind == "binary" else spec.bounds[1] - spec.bounds[0] if spec.bounds else math.inf
            if not 0 <= value < width:
                raise ConfigError(
                    f"--clue-margin {name}: must be >= 0 and below {width:g} (the metric's range), got {value}"
                )
    return margin, margins
