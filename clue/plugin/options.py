"""The pytest face of the configuration: clue's options and their ini twins on pytest's parser, and the mapping of
pytest's command line, ini values and `[tool.clue]` onto clue.config.Settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pytest

from clue.config import Layer, Option, Settings, collect_options, settings_from, tool_clue
from clue.errors import ConfigError


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("clue", "clue: clinical LLM benchmark and regression gate")
    for opt in collect_options():
        flag = "--clue-" + opt.name.replace("_", "-")
        kwargs: dict[str, Any] = {"dest": f"clue_{opt.name}", "help": opt.help}
        if opt.action == "store_true":
            kwargs.update(action="store_true", default=False)
        elif opt.action == "append":
            kwargs.update(action="append", default=[], metavar=opt.metavar)
        else:
            kwargs.update(type=opt.type, default=None, metavar=opt.metavar)
        group.addoption(flag, **kwargs)
        parser.addini(f"clue_{opt.name}", f"default for {flag}", type=_ini_type(opt), default=None)


def _ini_type(opt: Option) -> Literal["linelist", "bool", "string", "int", "float"]:
    """The ini key's type: pytest converts and checks it (an ini bool takes pytest's spellings, true/false)."""
    if opt.action == "append":
        return "linelist"
    if opt.action == "store_true":
        return "bool"
    return "int" if opt.kind is int else "float" if opt.kind is float else "string"


def _ini(config: pytest.Config, opt: Option) -> Any:
    """The ini value of an option; one pytest cannot read as the key's type is a ConfigError naming the key."""
    try:
        return config.getini(f"clue_{opt.name}")
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"ini clue_{opt.name}: {exc} ({_ini_type(opt)} expected)") from None


def resolve(config: pytest.Config) -> Settings:
    """Merge the command line, ini options and [tool.clue] into Settings (raises ConfigError)."""
    rootpath = Path(config.rootpath)
    cli: dict[str, Any] = {}
    ini: dict[str, Any] = {}
    for opt in collect_options():
        value = config.getoption(f"clue_{opt.name}")
        if value is not False:  # an unset store_true flag; an ini `false` is a setting (it overrides [tool.clue])
            cli[opt.name] = value
        ini[opt.name] = _ini(config, opt)
    layers = [
        Layer("command line", cli, Path(config.invocation_params.dir), "cli"),
        Layer(f"{config.inipath or 'ini'}", ini, rootpath, "ini"),
        Layer(f"{rootpath / 'pyproject.toml'} [tool.clue]", tool_clue(rootpath), rootpath, "toml"),
    ]
    return settings_from(rootpath, layers)
