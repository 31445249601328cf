"""Backends by name: clue's own (one line each here) and what installed packages declare under the entry-point group
`clue.backends` (a class with the `clue.backends.base.Backend` methods, built from a `ModelSpec`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from clue.util.registry import Registry

if TYPE_CHECKING:
    from clue.backends.base import Backend


def _backend_class(found: object) -> bool:
    """A class with the Backend protocol's methods (clue/backends/base.py); the protocol is structural."""
    methods = ("generate", "fingerprint", "token_counter", "describe", "close")
    return isinstance(found, type) and all(callable(getattr(found, m, None)) for m in methods)


BACKENDS: Registry[Callable[..., Backend]] = Registry(
    "clue.backends",
    {
        "transformers": "clue.backends.transformers:TransformersBackend",
        "vllm": "clue.backends.vllm:VLLMBackend",
        "openai": "clue.backends.openai_server:OpenAIServerBackend",
        "replay": "clue.backends.replay:ReplayBackend",
    },
    _backend_class,
    "a backend class (generate, fingerprint, token_counter, describe, close: clue.backends.base.Backend)",
)
