"""Settings from layers of sources: the first layer that sets an option wins (pytest: command line >
`[tool.pytest.ini_options]` (`clue_*` keys) > `[tool.clue]` in pyproject.toml > the built-in default); margins
merge key by key. Relative paths are taken from the layer's folder (the invocation directory for the command line,
the rootdir for configuration files). Each raw value is read and checked here, naming the option and the layer."""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

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


def _convert(name: str, value: Any, kind: Any) -> Any:
    """A number from a layer's value (a string from the command line or ini, a number from TOML or Python);
    a value that is not one, not finite, or an int option given a fraction is a ConfigError, never truncated."""
    try:
        if isinstance(value, bool) or (kind is int and isinstance(value, float) and not value.is_integer()):
            raise ValueError
        number = kind(value)
        if not math.isfinite(number):
            raise ValueError
        return number
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"clue option {name}: {value!r} is not a valid {kind.__name__}") from None


def _flag(value: Any) -> bool:
    return bool(value) and str(value).lower() not in ("false", "0", "no")


def _on_off(name: str, value: Any) -> bool:
    text = str(value).strip().lower()
    if text in ("on", "true", "1", "yes"):
        return True
    if text in ("off", "false", "0", "no"):
        return False
    raise ConfigError(f"{name} expects on or off, got {value!r}")


def _margins(layers: Sequence[Layer]) -> tuple[float | None, dict[str, float]]:
    """The global margin and per-metric margins, merged key by key from the lowest layer up ([tool.clue]'s `margin`
    and `[tool.clue.margins]`, then ini `clue_margin` lines, then --clue-margin): a higher layer overrides only the
    keys it sets."""
    margin: float | None = None
    margins: dict[str, float] = {}
    for layer in reversed(layers):
        for key, value in (layer.values.get("margins") or {}).items():
            margins[str(key)] = _convert(f"{layer.label} margins {key}", value, float)
        items = layer.values.get("margin")
        for item in items if isinstance(items, list) else [items]:
            if item is None:
                continue
            metric, sep, text = str(item).rpartition("=")
            if sep:
                margins[metric.strip()] = _convert(f"{layer.label} margin {metric.strip()}", text, float)
            else:
                margin = _convert(f"{layer.label} margin", text, float)
    for name, value in [("margin", margin), *margins.items()]:
        if value is not None and (value < 0 or value != value):
            raise ConfigError(f"clue margin {name}: must be >= 0, got {value}")
    return margin, margins


@dataclass(frozen=True)
class Layer:
    """One source of settings: option name -> value (`margins`: a per-metric table), and the folder its relative
    paths are relative to. A value of None, "" or [] is not set."""

    label: str  # "command line", "ini", "[tool.clue]", "evaluate()"
    values: Mapping[str, Any]
    base: Path


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
        value = opt.info.parse(raw, base, opt.flag)
        if opt.name in ("data", "contamination_reference") and source.label in _NAMED_NOW:
            _require_files(value, opt.flag)
        return value
    if opt.kind is bool:
        return _on_off(opt.flag, raw) if opt.info.on_off else _flag(raw)
    if opt.kind is Path:
        return (base / str(raw)).resolve()
    if opt.kind in (int, float):
        return _convert(opt.name, raw, opt.kind)
    return str(raw)


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
    margin, margins = _margins(layers)
    if margins:
        from clue.tasks import metric_names

        known = metric_names()
        if set(margins) - known:
            raise ConfigError(
                f"--clue-margin: unknown metric(s) {', '.join(sorted(set(margins) - known))}; "
                f"metrics: {', '.join(sorted(known))}"
            )
    return margin, margins
