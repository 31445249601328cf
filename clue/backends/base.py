"""The Backend protocol: what the plugin needs from an inference engine, and nothing more."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from clue.types import ChatMessage, Generation, GenerationSettings, Prompt


class TokenCounter(Protocol):
    """Token arithmetic of one model, for tasks that must budget their documents (LongHealth)."""

    context: int

    def count(self, text: str) -> int:
        """Tokens of a piece of text (cached per text: a document is counted once, not once per prompt)."""
        ...

    def count_prompt(self, messages: tuple[ChatMessage, ...]) -> int:
        """Tokens of a whole chat rendered with the model's chat template."""
        ...


class Backend(Protocol):
    def generate(self, prompts: Sequence[Prompt], settings: GenerationSettings, *, desc: str = "") -> list[Generation]:
        """One Generation per prompt, in the same order. A prompt that cannot be run gets a Generation with
        `error` set and empty text (scored as a wrong answer), rather than aborting the whole batch."""
        ...

    def token_counter(self) -> TokenCounter:
        """This model's token counting (built on its own tokenizer and chat template)."""
        ...

    def describe(self) -> dict[str, Any]:
        """Engine name and versions, model location and fingerprint: recorded in the results."""
        ...

    def close(self) -> None:
        """Free the model (GPU memory) once all of its generations exist."""
        ...
