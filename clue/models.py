"""Model entries and the model matrix file.

A model is a name, where its weights are (local path or Hugging Face id), an optional revision, dtype, chat
template override and the name of its base model (another entry). The matrix is a TOML file:

    [models.llama3-8b]
    path = "meta-llama/Meta-Llama-3-8B-Instruct"
    revision = "5f0b02c75b57c5855da9ae460ce51323ea669d8a"

    [models.my-clinical-ft]
    path = "/models/clinical-ft"          # local paths work offline; relative ones are relative to this file
    base = "llama3-8b"                    # the gate compares this model against that one
    dtype = "bfloat16"
    chat_template = "templates/llama3.jinja"

`build = "tiny-llama"` (with `seed`) instead of `path` builds a tiny random model offline: the embedded default.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from clue.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DTYPES = ("auto", "float32", "float16", "bfloat16")
BACKENDS = ("transformers", "replay")
BUILDERS = ("tiny-llama",)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    path: str | None = None
    revision: str | None = None
    dtype: str = "auto"
    chat_template: str | None = None
    base: str | None = None
    backend: str = "transformers"
    max_model_len: int | None = None
    trust_remote_code: bool = False
    build: str | None = None
    seed: int = 0

    @property
    def is_local(self) -> bool:
        return self.path is not None and Path(self.path).exists()

    def describe(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


_KEYS = {f.name for f in fields(ModelSpec)} - {"name"}


def _spec_from_table(name: str, table: Mapping[str, Any], origin: str, root: Path) -> ModelSpec:
    unknown = set(table) - _KEYS
    if unknown:
        raise ConfigError(
            f"{origin}: model {name!r}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(_KEYS))}"
        )
    values = dict(table)
    for key in ("path", "revision", "chat_template", "base", "build"):
        if key in values and not isinstance(values[key], str):
            raise ConfigError(f"{origin}: model {name!r}: {key} must be a string")
    if values.get("dtype", "auto") not in DTYPES:
        raise ConfigError(f"{origin}: model {name!r}: dtype {values['dtype']!r} is not one of {', '.join(DTYPES)}")
    if values.get("backend", "transformers") not in BACKENDS:
        raise ConfigError(
            f"{origin}: model {name!r}: backend {values['backend']!r} is not one of {', '.join(BACKENDS)}"
        )
    if "build" in values:
        if values["build"] not in BUILDERS:
            raise ConfigError(f"{origin}: model {name!r}: build {values['build']!r} is not one of {BUILDERS}")
        if "path" in values:
            raise ConfigError(f"{origin}: model {name!r}: give either path or build, not both")
    elif "path" not in values:
        raise ConfigError(f"{origin}: model {name!r}: needs a path (local folder or Hugging Face id)")
    for key in ("max_model_len", "seed"):
        if key in values and (not isinstance(values[key], int) or isinstance(values[key], bool)):
            raise ConfigError(f"{origin}: model {name!r}: {key} must be an integer")
    if "trust_remote_code" in values and not isinstance(values["trust_remote_code"], bool):
        raise ConfigError(f"{origin}: model {name!r}: trust_remote_code must be true or false")
    # a relative path that exists next to the matrix file is local; anything else is a hub id
    for key in ("path", "chat_template"):
        value = values.get(key)
        if value and not Path(value).is_absolute() and (root / value).exists():
            values[key] = str((root / value).resolve())
    if values.get("chat_template") and not Path(values["chat_template"]).is_file():
        raise ConfigError(f"{origin}: model {name!r}: chat_template file {values['chat_template']!r} not found")
    return ModelSpec(name=name, **values)


def check_matrix(models: Mapping[str, ModelSpec], origin: str) -> None:
    for spec in models.values():
        if spec.base is None:
            continue
        if spec.base == spec.name:
            raise ConfigError(f"{origin}: model {spec.name!r} names itself as its base")
        if spec.base not in models:
            raise ConfigError(
                f"{origin}: model {spec.name!r}: base {spec.base!r} is not an entry; entries: {', '.join(models)}"
            )


def load_matrix(path: Path) -> dict[str, ModelSpec]:
    """Read a model matrix TOML file; every error names the file and the entry."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"model matrix {path} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"model matrix {path}: invalid TOML: {exc}") from None
    tables = data.get("models")
    if not isinstance(tables, dict) or not tables:
        raise ConfigError(f"model matrix {path}: needs at least one [models.NAME] table")
    models = {}
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise ConfigError(f"model matrix {path}: models.{name} must be a table")
        models[name] = _spec_from_table(name, table, f"model matrix {path}", path.parent)
    check_matrix(models, f"model matrix {path}")
    return models


def pair_from_cli(model: str, base: str | None, **common: Any) -> dict[str, ModelSpec]:
    """`--clue-model X [--clue-base-model Y]`: entries named "candidate" and "base"."""
    models = {}
    if base:
        models["base"] = _spec_from_table("base", {"path": base, **common}, "--clue-base-model", Path.cwd())
    models["candidate"] = _spec_from_table(
        "candidate",
        {"path": model, **({"base": "base"} if base else {}), **common},
        "--clue-model",
        Path.cwd(),
    )
    return models
