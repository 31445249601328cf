"""Fluent neighbours for the contamination validation's `--neighbours fluent` and `fluent-quarter`: chosen content
words of an answer replaced by a causal language model's most likely other word given the text before them, the way
Mattern et al. (2023) draw neighbours from a masked language model (none can be downloaded here; the base model
proposes instead).

An experiment, not the diagnostic's default (clue/tasks/neighbours.py): it asks whether neighbours that keep the
answer's fluency separate heavy domain adaptation from contamination better than vocabulary swaps do
(docs/contamination.md, "Fluent neighbours"). Deterministic for a given model, text and seed.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

from clue.run.contamination.probes import Probe
from clue.tasks.neighbours import TOKEN, cased_like, is_content, split_core
from clue.types import TargetRequest

__all__ = ["Proposer", "fluent_neighbours", "with_fluent_neighbours"]


class Proposer:
    """A causal LM (a Hugging Face folder) that proposes the word most likely to follow a prefix."""

    def __init__(self, folder: Path) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        self.start = self.tokenizer.bos_token_id or self.tokenizer.eos_token_id

    def _logits(self, ids: list[int]) -> Any:
        with self.torch.no_grad():
            return self.model(self.torch.tensor([ids])).logits[0, -1]

    def word(self, prefix: str, original: str, rank: int) -> str | None:
        """The `rank`-th most likely whole word (0: the most likely) after `prefix` that is a content word other
        than `original`; its first token ranked, the rest completed greedily; None when the top 50 hold none."""
        prefix = prefix.rstrip(" ")
        ids = [self.start, *self.tokenizer(prefix, add_special_tokens=False)["input_ids"]] if prefix else [self.start]
        for first in self.torch.argsort(self._logits(ids), descending=True)[:50].tolist():
            piece = str(self.tokenizer.decode([first]))
            if (prefix and not piece.startswith(" ")) or not piece.strip()[:1].isalnum():
                continue
            word, grown = piece.strip(), [*ids, first]
            for _ in range(4):  # the rest of the word: tokens that continue it without a space
                following = int(self.torch.argmax(self._logits(grown)))
                more = str(self.tokenizer.decode([following]))
                if not more[:1].isalnum():
                    break
                word, grown = word + more, [*grown, following]
            if word.casefold() != original.casefold() and is_content(word):
                if rank == 0:
                    return word
                rank -= 1
        return None


def fluent_neighbours(text: str, proposer: Proposer, *, k: int, share: float, seed: str) -> tuple[str, ...]:
    """`k` neighbours of `text`, each with round(share x content words) (at least one) of its content words
    replaced, left to right, by the proposer's word given the (already changed) text before it. With one word per
    neighbour, the neighbours change different words first and take the next-ranked proposal when they repeat one."""
    spans = [m for m in TOKEN.finditer(text) if is_content(split_core(m.group())[1])]
    if not spans:
        return ()
    rng = random.Random(int.from_bytes(hashlib.sha256(f"{seed}\0{text}".encode()).digest()[:8], "big"))
    count = max(1, round(share * len(spans)))
    order = rng.sample(range(len(spans)), len(spans))
    made = []
    for j in range(k):
        chosen, rank = sorted(rng.sample(range(len(spans)), min(count, len(spans)))), 0
        if count == 1:
            chosen, rank = [order[j % len(spans)]], j // len(spans)
        current, shift = text, 0
        for index in chosen:
            span = spans[index]
            lead, core, _ = split_core(span.group())
            at = span.start() + shift + len(lead)
            word = proposer.word(current[:at], core, rank)
            if word is None:
                continue
            word = cased_like(word, core)
            current, shift = current[:at] + word + current[at + len(core) :], shift + len(word) - len(core)
        made.append(current)
    return tuple(made)


def with_fluent_neighbours(probes: list[Probe], proposer: Proposer, *, share: float, seed: str) -> list[Probe]:
    """The same probes (prompts and exact answers) with as many fluent neighbours as they had swapped ones."""
    out = []
    for probe in probes:
        exact, *swapped = probe.request.targets
        near = fluent_neighbours(exact, proposer, k=len(swapped), share=share, seed=seed)
        out.append(replace(probe, request=TargetRequest(probe.request.prompt, (exact, *near))))
    return out
