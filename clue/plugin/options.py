"""The pytest face of the configuration: clue's options and their ini twins on pytest's parser, and the mapping of
pytest's command line, ini values and `[tool.clue]` onto clue.config.Settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pytest

from clue.config import Layer, Settings, collect_options, settings_from, tool_clue


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
        ini_type: Literal["linelist", "bool", "string"] = (
            "linelist" if opt.action == "append" else "bool" if opt.action == "store_true" else "string"
        )
        parser.addini(f"clue_{opt.name}", f"default for {flag}", type=ini_type, default=None)


def resolve(config: pytest.Config) -> Settings:
    """Merge the command line, ini options and [tool.clue] into Settings (raises ConfigError)."""
    rootpath = Path(config.rootpath)
    cli: dict[str, Any] = {}
    ini: dict[str, Any] = {}
    for opt in collect_options():
        value = config.getoption(f"clue_{opt.name}")
        if value is not False:  # an unset store_true flag; an ini `false` is a setting (it overrides [tool.clue])
            cli[opt.name] = value
        ini[opt.name] = config.getini(f"clue_{opt.name}")
    layers = [
        Layer("command line", cli, Path(config.invocation_params.dir)),
        Layer("ini", ini, rootpath),
        Layer(f"{rootpath / 'pyproject.toml'} [tool.clue]", tool_clue(rootpath), rootpath),
    ]
    return settings_from(rootpath, layers)
