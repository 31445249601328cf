"""The Backend protocol: what the plugin needs from an inference engine, and nothing more."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from clue.types import Generation, GenerationSettings, Prompt, ScoredTargets, TargetRequest, TokenCounter

if TYPE_CHECKING:
    from clue.store.sqlite import GenerationStore

__all__ = ["Backend", "ScoresTargets", "TokenCounter", "failed_generation", "scores_targets"]


def failed_generation(prompt: Prompt, error: str, prompt_tokens: int = 0) -> Generation:
    """The record of a prompt that could not be run: empty text, scored as a wrong answer, never stored."""
    return Generation(
        prompt.sample_id, "", prompt_tokens, 0, "error", 0.0, truncated_tokens=prompt.truncated_tokens, error=error
    )


class Backend(Protocol):
    """An engine for one model entry. Optional, found by getattr: `probe()` (a digest of next-token logits on fixed
    prompts: the weights check), `counts_from_store` (token counts may come from the store's memo), a static
    `release_engines()` (free engines the class keeps between entries, called once at the run's end), and where the
    prompts go for the data-use guard (clue/backends/data_use.py): `in_process = True`, or a static
    `destination(spec)`; a class that says neither is taken to send them off this machine."""

    loads: int  # how many times the weights were loaded (0 when every prompt came from the store)
    per_sample_outputs: bool  # outputs are keyed by sample, not determined by the prompt (replay)
    batch_sensitive: bool  # the batch size changes outputs (left padding): it is part of the store key

    def generate(
        self,
        prompts: Sequence[Prompt],
        settings: GenerationSettings,
        *,
        desc: str = "",
        on_result: Callable[[int, Generation], None] | None = None,
    ) -> list[Generation]:
        """One Generation per prompt, in the same order; `on_result(index, generation)` is called as soon as each
        exists (the store persists it). A prompt that cannot be run gets a Generation with `error` set and empty
        text (scored as a wrong answer), rather than aborting the whole batch. Weights load on the first call."""
        ...

    def fingerprint(self, store: GenerationStore) -> dict[str, Any]:
        """Everything about the model and engine that determines outputs, computed without loading weights."""
        ...

    def token_counter(self) -> TokenCounter | None:
        """This model's token counting (its own tokenizer and chat template); None when the backend has no
        tokenizer (a server entry with tokenizer = "none"), in which case documents are not budgeted."""
        ...

    def describe(self) -> dict[str, Any]:
        """Engine name and versions, model location and fingerprint: recorded in the results."""
        ...

    def close(self) -> None:
        """Free the model (GPU memory) once all of its generations exist."""
        ...


class ScoresTargets(Protocol):
    """A backend that can give the log-probability of a given answer after a prompt (the contamination diagnostic):
    the transformers backend (a forward pass), vLLM (prompt log-probs), a server that returns prompt log-probs.
    Found with `scores_targets(backend)`; replay and servers that cannot do not have it."""

    def score_targets(
        self,
        requests: Sequence[TargetRequest],
        *,
        desc: str = "",
        on_result: Callable[[int, ScoredTargets], None] | None = None,
    ) -> list[ScoredTargets]:
        """One ScoredTargets per request, in order; `on_result(index, scored)` as soon as each exists. The
        targets' tokens are the answer text's own (no special tokens), after the prompt's generation prompt;
        a document too long for the context is shortened as for generation. Weights load on the first call."""
        ...


def scores_targets(backend: object) -> ScoresTargets | None:
    """The backend as a ScoresTargets, or None when it cannot score targets (replay, a server without prompt
    log-probs): the diagnostic then says "not available"."""
    method = getattr(backend, "score_targets", None)
    return backend if callable(method) else None  # type: ignore[return-value]
