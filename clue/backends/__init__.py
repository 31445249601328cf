"""Backends turn prompts into generations. Each is one file, imported only when a model uses it, so that
`import clue` never imports torch or vLLM; installed packages add backends under the entry-point group
`clue.backends` (clue/backends/registry.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from clue.backends.registry import BACKENDS
from clue.errors import ConfigError

if TYPE_CHECKING:
    from clue.backends.base import Backend
    from clue.models.matrix import ModelSpec


def built(spec: ModelSpec, cache_dir: Path) -> ModelSpec:
    """The entry with a builder's output in place of `build`: its path (and, for an adapter, its adapter)."""
    if spec.build is None:
        if spec.path is None:  # pragma: no cover - ModelSpec validation prevents it
            raise ConfigError(f"model {spec.name!r} has neither path nor build")
        return spec
    if spec.build == "tiny-llama":
        from clue.models.tiny import build_tiny_llama, tiny_model_dir

        return replace(spec, build=None, path=str(build_tiny_llama(tiny_model_dir(cache_dir, spec.seed), spec.seed)))
    from clue.models import smollm2

    gguf = str(smollm2.gguf_path(cache_dir))
    if spec.build == "smollm2":
        return replace(spec, build=None, path=gguf)
    if spec.build == "smollm2-lora":
        return replace(spec, build=None, path=gguf, adapter=str(smollm2.lora_adapter(cache_dir)))
    if spec.build == "smollm2-lora-merged":
        return replace(spec, build=None, path=str(smollm2.merged_model(cache_dir)))
    raise ConfigError(f"model {spec.name!r}: unknown build {spec.build!r}")  # pragma: no cover - validated


def check_entry(spec: ModelSpec) -> None:
    """Start-up checks of an entry's backend that need no weights (a backend's optional `check(spec, location)`):
    a GGUF file's header, an adapter's config and rank, option combinations the engine refuses. Built entries are
    made by clue itself, on first use, and are not checked here."""
    if spec.build is not None and spec.adapter:  # clue builds the weights; the adapter is the user's
        from clue.backends.weights import check_adapter

        check_adapter(spec.adapter, None, f"model {spec.name!r}", needs_peft=spec.backend == "transformers")
    if spec.build is not None or spec.path is None:
        return
    try:
        backend_cls = BACKENDS.load(spec.backend, "backend")
    except ConfigError as exc:
        raise ConfigError(f"model {spec.name!r}: {exc}") from None
    check = getattr(backend_cls, "check", None)
    if check is not None:
        check(spec, spec.path)


def load_backend(spec: ModelSpec, cache_dir: Path, peers: Mapping[str, ModelSpec] | None = None) -> Backend:
    """The entry's backend; `peers` (the whole matrix) lets an engine be shared by entries on the same weights."""
    try:
        backend_cls = BACKENDS.load(spec.backend, "backend")
    except ConfigError as exc:
        raise ConfigError(f"model {spec.name!r}: {exc}") from None
    extra = {"peers": peers} if getattr(backend_cls, "uses_peers", False) else {}
    concrete = built(spec, cache_dir)
    backend: Backend = backend_cls(concrete, concrete.path, **extra)
    return backend
