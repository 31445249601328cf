"""Every option through every layer with hostile values (hypothesis): each value is either read as what it says or
refused with one ConfigError (or pytest's usage error, for the command line's own conversions) naming the option as
that layer spells it. Never another exception (an INTERNALERROR under pytest), never a silent change of meaning
(`report_samples = "off"` read as on), never an unbounded number (10**11 resamples filled 23 GB)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pytest
from _pytest.config import _strtobool
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import clue
from clue.config import OPTIONS, GateOptions, Layer, Option, settings_from
from clue.errors import ConfigError
from clue.plugin.options import resolve

pytest_plugins = ["pytester"]

ROOT = Path("/tmp/clue-option-layers")
WORDS = ["on", "off", "true", "false", "yes", "no", "0", "1", "OFF", " off", "False", "n", "", "nan", "-1", "1e400"]
texts = st.one_of(st.sampled_from(WORDS), st.text(max_size=12))
numbers = st.one_of(
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, 1, -1, 10**11, 2**32, 2**63]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 0.5, 1.0, 5.0, -1e-300, 1e-300, 1e300]),
)
scalars = st.one_of(st.booleans(), numbers, texts)
toml_values = st.one_of(
    scalars, st.lists(scalars, max_size=3), st.dictionaries(st.sampled_from(["mednli", "rouge1", "x"]), scalars)
)
python_values = st.one_of(toml_values, st.sampled_from([(), ("a",), Path("x"), b"off", object()]))
NAMES = [o.name for o in OPTIONS]


def _named(message: str, opt: Option, layer: Layer) -> bool:
    return opt.flag in message or layer.where(opt.name) in message or f"margin {opt.name}" in message


def _reading_is_faithful(opt: Option, raw: Any, value: Any, layer: Layer) -> None:
    """An accepted value means what the raw value says (the oracle, written from the option's type alone; options
    with a reader of their own, `parse`, are checked by their own tests)."""
    if opt.info.parse is not None:
        return
    if opt.kind is bool:
        if isinstance(raw, bool):
            assert value is raw
        else:
            assert opt.info.on_off and isinstance(raw, str), (opt.name, raw)
            assert value is {"on": True, "true": True, "off": False, "false": False}[raw.strip().lower()]
    elif opt.kind in (int, float):
        if layer.text and isinstance(raw, str):
            raw = float(raw)
        assert not isinstance(raw, bool) and isinstance(raw, int | float), (opt.name, raw)
        assert math.isfinite(value) and value == raw and type(value) is opt.kind, (opt.name, raw, value)
        if opt.info.check is not None:
            assert opt.info.check(value) is None
    elif opt.kind is str:
        assert value == raw
    elif opt.kind is Path:
        assert isinstance(raw, str | os.PathLike) and value == (layer.base / raw).resolve()


def _settle(opt: Option, layer: Layer, raw: Any) -> None:
    try:
        got = settings_from(ROOT, [layer])
    except ConfigError as exc:
        assert _named(str(exc), opt, layer) or opt.name in str(exc), (opt.name, raw, str(exc))
        return
    value = getattr(getattr(got, opt.section), opt.name, None)
    if raw in (None, "", []) or opt.name == "margin":
        return  # not set (the default), or merged into the margins (checked below)
    if opt.name == "cpu_threads" and raw == 0:
        return  # 0: the machine's share
    _reading_is_faithful(opt, raw, value, layer)


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(NAMES), toml_values)
def test_every_option_from_tool_clue_is_read_as_written_or_refused_naming_it(name: str, raw: Any) -> None:
    opt = next(o for o in OPTIONS if o.name == name)
    _settle(opt, Layer("pyproject.toml [tool.clue]", {name: raw}, ROOT, "toml"), raw)


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(NAMES), python_values)
def test_every_option_from_evaluate_is_read_as_written_or_refused_naming_it(name: str, raw: Any) -> None:
    opt = next(o for o in OPTIONS if o.name == name)
    _settle(opt, Layer("evaluate()", {name: raw}, ROOT, "python"), raw)


def _margins_read(layer: Layer) -> GateOptions | None:
    """The gate's settings from one layer setting margins, or None when it was refused with a ConfigError naming
    the margin."""
    try:
        return settings_from(ROOT, [layer]).gate
    except ConfigError as exc:
        assert "margin" in str(exc), str(exc)
        return None


@settings(max_examples=200, deadline=None)
@given(st.one_of(toml_values, st.dictionaries(st.text(max_size=8), python_values, max_size=3)))
def test_margins_tables_are_metric_numbers_within_the_metric_range_or_refused(raw: Any) -> None:
    """`[tool.clue] margins = 5` was an INTERNALERROR; a margin of 5 on a 0-1 metric was accepted."""
    got = _margins_read(Layer("pyproject.toml [tool.clue]", {"margins": raw}, ROOT, "toml"))
    if got is None:
        return
    for metric, value in got.margins.items():
        assert isinstance(raw, dict) and raw[metric] == value and 0 <= value < 2, (raw, got.margins)


@settings(max_examples=300, deadline=None)
@given(st.one_of(toml_values, st.lists(st.one_of(numbers, st.sampled_from(["=0.1", "rouge1=0.1", "0.1"])))))
def test_margin_values_are_one_global_and_known_metrics_or_refused(raw: Any) -> None:
    """A list where one number belongs is not read as its last element; `=0.1` names no metric."""
    got = _margins_read(Layer("evaluate()", {"margin": raw}, ROOT, "python"))
    if got is None:
        return
    items = raw if isinstance(raw, list) else [raw]
    plain = [i for i in items if not (isinstance(i, str) and "=" in i)]
    assert len(plain) <= 1
    if plain and got.margin is not None:
        assert got.margin == float(plain[0]) and 0 <= got.margin < 1


# the command line and ini, through pytest's own parsing (its conversions come first, then clue's)
cli_texts = st.one_of(texts, numbers.map(str))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(NAMES), raw=cli_texts, ini=st.booleans())
def test_every_option_from_the_command_line_and_ini_is_read_as_written_or_refused_naming_it(
    pytester: pytest.Pytester, name: str, raw: str, ini: bool
) -> None:
    opt = next(o for o in OPTIONS if o.name == name)
    if not raw.isprintable() or "%" in raw or (ini and raw.lstrip()[:1] in ("#", ";", "[")):
        return  # not one ini line (pytest's ini reader splits it, comments it out or interpolates %)
    if ini:
        pytester.makeini(f"[pytest]\nclue_{name} = {raw}\n")
        args: tuple[str, ...] = ()
    else:
        pytester.makeini("[pytest]\n")
        args = (opt.flag,) if opt.action == "store_true" else (f"{opt.flag}={raw}",)
    try:
        got = resolve(pytester.parseconfig(*args))
    except (ConfigError, pytest.UsageError) as exc:
        message = str(exc)
        assert f"clue_{name}" in message or opt.flag in message or name in message, (name, raw, message)
        return
    value = getattr(getattr(got, opt.section), opt.name)
    if opt.kind is bool and ini and opt.action == "store_true":
        assert raw.strip() and value is _strtobool(raw.strip()), (name, raw, value)  # pytest's ini bool spellings
    elif opt.kind is bool and not ini and opt.action == "store_true":
        assert value is True
    elif raw.strip() and opt.name not in ("margin", "cpu_threads") and opt.info.parse is None:
        layer = Layer("x", {}, pytester.path, "ini" if ini else "cli")
        written = raw.strip() if ini or opt.kind in (int, float) else raw  # an ini value is stripped
        _reading_is_faithful(opt, written, value, layer)


def test_a_boolean_written_as_a_word_is_refused_in_tool_clue_and_evaluate(pytester: pytest.Pytester) -> None:
    """The defect: `report_samples = "off"` switched raw-sample reports on (any string but a few read as true)."""
    pytester.makepyprojecttoml('[tool.clue]\nreport_samples = "off"\n')
    with pytest.raises(ConfigError, match=r"\[tool.clue\] report_samples expects true or false, got str 'off'"):
        resolve(pytester.parseconfig())
    pytester.makepyprojecttoml("[tool.clue]\n")
    with pytest.raises(ConfigError, match=r"evaluate\(\) report_samples= expects true or false, got str 'off'"):
        clue.evaluate(root=pytester.path, report_samples="off", tasks=["mednli"])
    with pytest.raises(ConfigError, match=r"evaluate\(\) sequential= expects true or false"):
        clue.evaluate(root=pytester.path, sequential="no", tasks=["mednli"])


def test_wrong_types_are_named_as_wrong_types_not_missing_files(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml('[tool.clue]\nmatrix = ["a", "b"]\nmargins = 5\n')
    with pytest.raises(ConfigError, match=r"\[tool.clue\] (matrix expects a path, got list|margins expects a table)"):
        resolve(pytester.parseconfig())
    with pytest.raises(ConfigError, match=r"evaluate\(\) matrix= expects a path, got int 5"):
        clue.evaluate(root=pytester.path / "nowhere", matrix=5)


def test_resamples_are_bounded_by_what_a_machine_holds(pytester: pytest.Pytester) -> None:
    with pytest.raises(ConfigError, match=r"--clue-resamples must be between 100 and 1e\+06, got 1e\+11"):
        resolve(pytester.parseconfig("--clue-resamples", "100000000000"))


def test_an_unknown_task_or_case_in_evaluate_is_an_error_with_the_nearest_name(tmp_path: Path) -> None:
    """`evaluate(["mednil"])` returned an empty run, which reads as "nothing regressed"."""
    with pytest.raises(ConfigError, match=r"no task 'mednil' \(did you mean 'mednli'\?\)"):
        clue.evaluate(["mednil"], root=tmp_path, model="a", base_model="b")
    with pytest.raises(ConfigError, match=r"no case 'candidat' \(did you mean 'candidate'\?\)"):
        clue.evaluate(["mednli"], root=tmp_path, model="a", base_model="b", cases=["candidat"])
