"""The records that flow through clue: samples in, prompts to a backend, generations out, scores per sample.

All are frozen so that a record cannot be changed after it was produced: the gate and the report compare pairs of
per-sample records, and a silently mutated record would make that comparison meaningless.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

__all__ = [
    "ChatMessage",
    "FinishReason",
    "Generation",
    "GenerationSettings",
    "MetricSpec",
    "Prompt",
    "Role",
    "Sample",
    "SampleScore",
    "ScoredTargets",
    "TargetRequest",
    "TargetScore",
    "TaskResult",
    "TokenCounter",
]

Role = Literal["system", "user", "assistant"]
FinishReason = Literal["stop", "length", "error"]


@dataclass(frozen=True)
class Sample:
    """One record of a data set, as loaded from the published file.

    `id` is stable across runs (taken from the file where it has one, else the record's position) so that the
    model's and the base model's scores can be paired by it.
    """

    id: str
    fields: Mapping[str, Any]
    reference: Any
    source: str = ""  # "file:line" for error messages


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str


@dataclass(frozen=True)
class Prompt:
    """A chat to send to a model for one sample.

    `truncatable` names the text inside the last message that may be shortened to fit the model's context (the
    document); everything else (system prompt, few-shot turns, instructions) is kept whole.
    """

    task: str
    sample_id: str
    messages: tuple[ChatMessage, ...]
    max_new_tokens: int
    truncatable: str | None = None
    truncated_tokens: int = 0  # document tokens the task already removed to fit the context (LongHealth)


@dataclass(frozen=True)
class GenerationSettings:
    """Everything about decoding that changes an output; recorded in every result.

    CLUE's reference scripts left temperature at vLLM's default of 1.0 (sampling); clue decodes greedily by
    default so that a run is reproducible, and says so in the results.
    """

    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 1
    batch_size: int = 8

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "decoding": "greedy" if self.greedy else "sampling",
        }


@dataclass(frozen=True)
class Generation:
    """What a backend returned for one prompt. Identical in shape for every backend."""

    sample_id: str
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: FinishReason
    latency_s: float
    truncated_tokens: int = 0
    error: str | None = None


@dataclass(frozen=True)
class TargetRequest:
    """Texts whose log-probability a model is asked for, each as the assistant's answer to one prompt (the
    contamination diagnostic: a sample's reference answer and its perturbed neighbours). The prompt's context is
    computed once for all of them."""

    prompt: Prompt
    targets: tuple[str, ...]


@dataclass(frozen=True)
class TargetScore:
    """A target's log-probability under a model: the sum over its tokens and how many tokens it has (the mean per
    token is what models with different tokenizers can compare)."""

    logprob: float
    tokens: int

    @property
    def per_token(self) -> float:
        return self.logprob / self.tokens


@dataclass(frozen=True)
class ScoredTargets:
    """A TargetRequest's answer: one score per target, in order, or the error that prevented them (a prompt that
    does not fit the context, a server that refused): never stored, tried again on the next run."""

    scores: tuple[TargetScore, ...]
    error: str | None = None


@dataclass(frozen=True)
class SampleScore:
    """A task's scores for one sample; `parsed` is what the output parser extracted (label, code list, ...)."""

    sample_id: str
    scores: Mapping[str, float]
    parsed: Any = None
    parse_ok: bool = True
    cluster: str | None = None  # samples of one cluster (a question asked several times) move together in the gate
    flags: tuple[str, ...] = ()  # what the session found beyond the task's scoring (e.g. "copies_few_shot")


@dataclass(frozen=True)
class MetricSpec:
    """A metric's definition: direction and kind are part of it, so the gate never has to guess.

    kind "binary" means per-sample scores are 0/1 (an exact paired test applies), "continuous" anything in a
    range (paired bootstrap). `gate` says whether a regression on this metric fails the test.
    """

    name: str
    description: str
    higher_is_better: bool = True
    kind: Literal["binary", "continuous"] = "continuous"
    gate: bool = True
    fingerprint: Mapping[str, str] = field(default_factory=dict)
    margin: float | None = None  # the default non-inferiority margin on this metric's scale (None: 0.02)
    # the range a per-sample score lies in (None: any finite number; binary metrics: 0 or 1): a stored baseline
    # holding a score outside it was edited or damaged, and is refused when read
    bounds: tuple[float, float] | None = None

    def score_problem(self, value: float) -> str | None:
        """Why `value` cannot be a score of this metric, or None."""
        if not math.isfinite(value):
            return "not a finite number"
        if self.kind == "binary" and value not in (0, 1):
            return "not 0 or 1 (a binary metric)"
        # a float's rounding may step just past a bound (a BERTScore cosine of 1.0000001): that is no edit
        if self.bounds is not None and not self.bounds[0] - 1e-6 <= value <= self.bounds[1] + 1e-6:
            return f"outside this metric's range [{self.bounds[0]:g}, {self.bounds[1]:g}]"
        return None


@dataclass(frozen=True)
class TaskResult:
    """A task's outcome for one model: per-sample scores are the source, aggregates are derived from them."""

    task: str
    model: str
    metrics: tuple[MetricSpec, ...]
    samples: tuple[SampleScore, ...]
    generations: tuple[Generation, ...]
    settings: Mapping[str, Any]
    provenance: Mapping[str, Any]

    @property
    def n(self) -> int:
        return len(self.samples)

    def clusters(self) -> list[str] | None:
        """Cluster labels for the gate, or None when the task has no repeated measurements."""
        if all(s.cluster is None for s in self.samples):
            return None
        return [s.cluster or s.sample_id for s in self.samples]

    def values(self, metric: str) -> list[float]:
        return [float(s.scores[metric]) for s in self.samples]

    def aggregate(self, metric: str) -> float:
        """Mean over samples (every sample counted once; CLUE's running mean counted the first twice)."""
        values = self.values(metric)
        if not values:
            raise ValueError(f"task {self.task!r}, model {self.model!r}: no samples to aggregate {metric!r}")
        return sum(values) / len(values)


class TokenCounter(Protocol):
    """Token arithmetic of one model, for tasks that must budget their documents (LongHealth)."""

    context: int

    def count(self, text: str) -> int:
        """Tokens of a piece of text (cached per text: a document is counted once, not once per prompt)."""
        ...

    def count_prompt(self, messages: tuple[ChatMessage, ...]) -> int:
        """Tokens of a whole chat rendered with the model's chat template."""
        ...
