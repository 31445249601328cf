"""Backends turn prompts into generations. Each is one file, imported only when a model uses it, so that
`import clue` never imports torch or vLLM; installed packages add backends under the entry-point group
`clue.backends` (clue/registry.py)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from clue.errors import ConfigError
from clue.registry import BACKENDS

if TYPE_CHECKING:
    from clue.backends.base import Backend
    from clue.models import ModelSpec


def resolve_location(spec: ModelSpec, cache_dir: Path) -> str:
    """Where the weights are: the entry's path, or the folder a builder writes (built on first use)."""
    if spec.build == "tiny-llama":
        from clue.tiny import build_tiny_llama, tiny_model_dir

        return str(build_tiny_llama(tiny_model_dir(cache_dir, spec.seed), spec.seed))
    if spec.path is None:  # pragma: no cover - ModelSpec validation prevents it
        raise ConfigError(f"model {spec.name!r} has neither path nor build")
    return spec.path


def load_backend(spec: ModelSpec, cache_dir: Path, peers: Mapping[str, ModelSpec] | None = None) -> Backend:
    """The entry's backend; `peers` (the whole matrix) lets an engine be shared by entries on the same weights."""
    try:
        backend_cls = BACKENDS.load(spec.backend, "backend")
    except ConfigError as exc:
        raise ConfigError(f"model {spec.name!r}: {exc}") from None
    extra = {"peers": peers} if getattr(backend_cls, "uses_peers", False) else {}
    backend: Backend = backend_cls(spec, resolve_location(spec, cache_dir), **extra)
    return backend
