"""clue: the CLUE clinical LLM benchmark as a pytest suite, with a paired regression gate against a base model, and
the same evaluation from Python:

    import clue
    run = clue.evaluate(tasks=["mednli"], limit=50)

Importing clue imports neither torch, pytest nor any inference engine: backends are loaded when a model needs them,
and `clue.evaluate` when it is first used.
"""

from typing import Any

from clue.version import __version__

__all__ = ["Evaluation", "__version__", "evaluate"]


def __getattr__(name: str) -> Any:
    """`clue.evaluate` and `clue.Evaluation`, imported on first use (the evaluation core imports numpy and the
    task registry)."""
    if name in ("evaluate", "Evaluation"):
        from clue import api

        return getattr(api, name)
    raise AttributeError(f"module 'clue' has no attribute {name!r}")
