"""One place per option: an option is one field of a settings section (clue/config/sections.py), and everything
else follows from it: the `--clue-*` flag with its help and rendered default, the ini key, the `[tool.clue]` key,
`clue.evaluate()`'s keyword, the typed value in `Settings`, and its check. These tests add an option in that one
place and look for it everywhere."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import clue
from clue import api, config
from clue.config import OPTIONS, Layer, sections, settings_from
from clue.errors import ConfigError
from clue.plugin.options import resolve
from clue.util.options import at_least, option

pytest_plugins = ["pytester"]


def with_new_option(monkeypatch: pytest.MonkeyPatch) -> None:
    """The generation section with one more field, declared the way every option is: nothing else changes."""
    extended = dataclasses.make_dataclass(
        "GenerationOptions",
        [("warmup_prompts", int, option(3, "prompts run before the timed ones", metavar="N", check=at_least(1)))],
        bases=(config.GenerationOptions,),
        frozen=True,
    )
    monkeypatch.setattr(sections, "GenerationOptions", extended)  # where Settings' annotations are resolved


def test_an_option_added_to_a_section_is_a_flag_an_ini_key_a_tool_clue_key_and_an_evaluate_keyword(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_new_option(monkeypatch)
    added = [o for o in config.collect_options() if o.name == "warmup_prompts"]
    assert [(o.section, o.kind, o.default) for o in added] == [("generation", int, 3)]

    help_text = " ".join(pytester.runpytest("--help").stdout.str().split())
    assert "--clue-warmup-prompts=N prompts run before the timed ones (default: 3)" in help_text
    assert "clue_warmup_prompts (int): default for --clue-warmup-prompts" in help_text

    def warmup(*args: str) -> Any:
        section: Any = resolve(pytester.parseconfig(*args)).generation  # the extended section
        return section.warmup_prompts

    assert warmup() == 3
    pytester.makepyprojecttoml("[tool.clue]\nwarmup_prompts = 7\n")
    assert warmup() == 7
    pytester.makeini("[pytest]\nclue_warmup_prompts = 5\n")
    assert warmup() == 5
    assert warmup("--clue-warmup-prompts", "9") == 9
    with pytest.raises(ConfigError, match="--clue-warmup-prompts must be at least 1"):
        warmup("--clue-warmup-prompts", "0")

    seen: list[Any] = []

    class Stop(Exception):
        pass

    def session(settings: config.Settings) -> None:
        seen.append(settings)
        raise Stop

    monkeypatch.setattr(api, "ClueSession", session)
    with pytest.raises(Stop):
        clue.evaluate(root=pytester.path, warmup_prompts=11)
    assert seen[0].generation.warmup_prompts == 11


def test_every_option_renders_its_default_from_its_value() -> None:
    """The help says the default the code uses: rendered from the field's value unless the value alone cannot say
    it (`shown`), never typed twice."""
    for opt in OPTIONS:
        if opt.action == "store_true":
            assert opt.default is False, opt.name
            continue
        assert opt.help.endswith(")") and "(default: " in opt.help, opt.name
        assert opt.help.count("(default") == 1, f"{opt.name}: a default typed into the help as well: {opt.help}"
        if opt.info.shown is None and opt.default not in (None, (), {}):
            shown = ("on" if opt.default else "off") if opt.kind is bool else str(opt.default)
            assert opt.help.endswith(f"(default: {shown})"), opt.name


def test_defaults_are_the_sections_defaults(tmp_path: Path) -> None:
    """A run with nothing set has each section's own defaults (paths resolved against the root, the machine's
    threads and SciBERT's layer derived)."""
    settings = settings_from(tmp_path, [])
    for opt in OPTIONS:
        value = getattr(getattr(settings, opt.section), opt.name)
        if opt.name in ("cpu_threads", "bertscore_layers"):
            assert value and value >= 1
        elif isinstance(opt.default, Path):
            assert value == (tmp_path / opt.default).resolve()
        else:
            assert value == opt.default, opt.name


NUMBERS = [o for o in OPTIONS if o.kind in (int, float) and o.info.check is not None]


@given(st.sampled_from(NUMBERS), st.one_of(st.integers(-(10**6), 10**6), st.floats(allow_nan=False)))
def test_a_number_is_taken_or_refused_naming_the_flag(opt: config.Option, value: float) -> None:
    """Generated values for every checked number: each either lands in its section as given (converted), or is a
    ConfigError that names the flag; never another exception, never a silently different value."""
    try:
        settings = settings_from(Path("/tmp"), [Layer("evaluate()", {opt.name: value}, Path("/tmp"))])
    except ConfigError as exc:
        assert str(exc).startswith(opt.flag) or f"evaluate() {opt.name}=" in str(exc), str(exc)
        return
    got = getattr(getattr(settings, opt.section), opt.name)
    assert got == opt.kind(value) or (opt.name == "cpu_threads" and value == 0)


@pytest.mark.parametrize(
    "opt", [o for o in OPTIONS if o.kind in (int, float) and not o.info.repeat], ids=lambda o: o.name
)
def test_every_number_has_a_range_with_both_ends(opt: config.Option) -> None:
    """A count of 10**11 resamples grew a process to 23 GB: every number an option takes is bounded above and
    below by what it can mean, checked at start-up (the margins, METRIC=VALUE items, are checked against each
    metric's range where they merge: tests/config/test_option_layers.py)."""
    assert opt.info.check is not None, f"{opt.name} takes any number"
    assert opt.info.check(10**12) is not None, f"{opt.name} has no upper bound"
    assert opt.info.check(-1) is not None, f"{opt.name} takes a negative number"
