"""The Backend protocol: what the plugin needs from an inference engine, and nothing more."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from clue.types import Generation, GenerationSettings, Prompt


class Backend(Protocol):
    def generate(self, prompts: Sequence[Prompt], settings: GenerationSettings, *, desc: str = "") -> list[Generation]:
        """One Generation per prompt, in the same order. A prompt that cannot be run gets a Generation with
        `error` set and empty text (scored as a wrong answer), rather than aborting the whole batch."""
        ...

    def describe(self) -> dict[str, Any]:
        """Engine name and versions, model location and fingerprint: recorded in the results."""
        ...

    def close(self) -> None:
        """Free the model (GPU memory) once all of its generations exist."""
        ...
