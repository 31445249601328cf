"""The generation loop: drive a backend through the store. Stored generations are reused, the rest generated and
stored one by one as they arrive, so an interrupted run resumes where it stopped."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from clue.backends.base import Backend, TokenCounter
from clue.store.fingerprint import generation_key, memo_key
from clue.store.sqlite import GenerationStore, canonical
from clue.types import ChatMessage, Generation, GenerationSettings, Prompt

T = TypeVar("T")


@dataclass
class StoredRun:
    """One model's prompts against the store: stored generations are reused, the rest generated and stored one by
    one as they arrive (an interrupted run resumes where it stopped). Identical prompts (LongHealth's repeated
    questions can shuffle to the same order) are generated once where the output is a function of the prompt alone
    (greedy decoding on a model); a generation then answers for every sample with that prompt, under the sample's
    own id. Recorded outputs (replay) and sampled outputs are per sample: their keys carry the sample id."""

    store: GenerationStore
    model: str
    prompts: Sequence[Prompt]
    keys: list[str]
    outputs: list[Generation | None]
    twins: dict[str, list[int]]  # key of a prompt to generate -> every index with that key, the first is generated
    reused: int

    @classmethod
    def plan(
        cls,
        store: GenerationStore,
        model: str,
        fingerprint: Mapping[str, Any],
        prompts: Sequence[Prompt],
        settings: GenerationSettings,
        *,
        per_sample_outputs: bool = False,
        batch_sensitive: bool = False,
        retry_failures: bool = True,
    ) -> StoredRun:
        """Look every prompt up in the store. Stored failures are retried (`retry_failures`, a normal run) or used
        as they are (a rescore, which must not generate)."""
        per_sample = per_sample_outputs or not settings.greedy
        batch = settings.batch_size if batch_sensitive else None
        keys = [generation_key(fingerprint, p, settings, per_sample=per_sample, batch_size=batch) for p in prompts]
        stored = {
            key: generation
            for key, generation in store.get_many(keys).items()
            if not (retry_failures and generation.error is not None)
        }
        outputs: list[Generation | None] = [
            replace(stored[key], sample_id=prompt.sample_id) if key in stored else None
            for key, prompt in zip(keys, prompts, strict=True)
        ]
        twins: dict[str, list[int]] = {}
        for i, key in enumerate(keys):
            if key not in stored:
                twins.setdefault(key, []).append(i)
        return cls(store, model, prompts, keys, outputs, twins, len(keys) - sum(map(len, twins.values())))

    @property
    def missing(self) -> list[int]:
        """Indices of the prompts to generate, one per distinct prompt."""
        return [indices[0] for indices in self.twins.values()]

    @property
    def generated(self) -> int:
        return sum(self.outputs[i] is not None for i in self.missing)

    def generate(
        self,
        backend: Backend,
        settings: GenerationSettings,
        desc: str,
        progress: Callable[[int, int, int], None] | None = None,
    ) -> list[Generation]:
        """Run what is missing; every result is stored as it arrives (a failure as a failure: retried next run).
        `progress(done, total, tokens)` is called after each new generation (tokens: generated so far), and with
        done = 0 when the backend reports that its engine is up."""
        missing = self.missing
        done = tokens = 0

        def keep(j: int, generation: Generation) -> None:
            nonlocal done, tokens
            i = missing[j]
            for twin in self.twins[self.keys[i]]:
                self.outputs[twin] = replace(generation, sample_id=self.prompts[twin].sample_id)
            self.store.put(self.keys[i], self.model, self.prompts[i].task, generation)
            done += 1
            tokens += generation.completion_tokens
            if progress is not None:
                progress(done, len(missing), tokens)

        if missing and self.store.read_only:  # before the backend loads anything: nothing new could be kept
            raise self.store.read_only_error(f"{len(missing)} generation(s) of {self.model} are not in it")
        if missing:
            # a backend that says when its engine is up (`reports_start`) starts the progress rates there
            extra: dict[str, Callable[[], None]] = {}
            if progress is not None and getattr(backend, "reports_start", False):
                report = progress
                extra["on_start"] = lambda: report(0, len(missing), 0)
            backend.generate([self.prompts[i] for i in missing], settings, desc=desc, on_result=keep, **extra)
        assert all(o is not None for o in self.outputs)
        return [o for o in self.outputs if o is not None]


class StoredCounter:
    """A model's token counts answered from the store's memo, keyed by the model's fingerprint and the text: a run
    whose prompts were all counted before (LongHealth budgets every document) loads no tokenizer. The model's own
    counter is made on the first miss; new counts are written by `flush`, once per prompt build."""

    def __init__(self, store: GenerationStore, fingerprint: Mapping[str, Any], make: Callable[[], TokenCounter | None]):
        self.store, self.make = store, make
        self.context = int(fingerprint["context"])
        self._model = hashlib.sha256(canonical(fingerprint).encode()).hexdigest()
        self._counter: TokenCounter | None = None
        self._counts: dict[str, int] = {}  # every count seen (a LongHealth document is asked for once per question)
        self._new: set[str] = set()  # the keys of counts computed here, to be written by flush

    def _lookup(self, what: str, payload: str, compute: Callable[[TokenCounter], int]) -> int:
        key = memo_key({"token_count": 1, "model": self._model}, what, hashlib.sha256(payload.encode()).hexdigest())
        if key not in self._counts:
            found = self.store.memo_get([key]).get(key)
            if isinstance(found, int):
                self._counts[key] = found
            else:
                if self._counter is None:
                    self._counter = self.make()
                    assert self._counter is not None, "a backend with counts_from_store has a tokenizer"
                self._counts[key] = compute(self._counter)
                self._new.add(key)
        return self._counts[key]

    def count(self, text: str) -> int:
        return self._lookup("text", text, lambda counter: counter.count(text))

    def count_prompt(self, messages: tuple[ChatMessage, ...]) -> int:
        payload = canonical([[m.role, m.content] for m in messages])
        return self._lookup("prompt", payload, lambda counter: counter.count_prompt(messages))

    def flush(self) -> None:
        if self._new:
            self.store.memo_put({key: self._counts[key] for key in self._new})
            self._new.clear()


def counted(store: GenerationStore, backend: Backend, build: Callable[[TokenCounter | None], list[T]]) -> list[T]:
    """`build` with the model's token counter: where the backend allows, counts come from the store's memo
    (StoredCounter), so a run whose work is all stored loads no tokenizer."""
    if not getattr(backend, "counts_from_store", False):
        return build(backend.token_counter())
    counter = StoredCounter(store, backend.fingerprint(store), backend.token_counter)
    built = build(counter)
    counter.flush()
    return built
