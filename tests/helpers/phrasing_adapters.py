"""LoRA adapters of SmolLM2 for the phrasing-robustness checks (issue 44), trained on MeQSum's scored items through
the task's own prompts (system wording, few-shot turns, input) so that the adapter sees exactly what the gate sends:

- `overfit`: the reference summary under the reference wording (CLUE's), an off-topic reply under the other
  wordings — a fine-tune that learnt the benchmark's template, not the task;
- `robust`: the reference summary under every wording trained on — a fine-tune trained across wordings.

Each is built once per content (items, wordings, epochs, rate, threads) under .clue-cache/models/, so a second run
trains nothing. The real-model tier's guard and studies/phrasing_overfit.py both use them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from clue.tasks import get_task
from clue.tasks.wordings import Wording, task_wordings, worded
from tests.helpers import MEQSUM, REPO

OFF_TOPIC = "Is there anything else I can help you with today?"


def meqsum_items(limit: int) -> tuple[list[object], list[object]]:
    """MeQSum's few-shot examples and its first `limit` scored samples, as a run at --clue-limit `limit` has them."""
    task = get_task("meqsum")
    shots, scored = task.split(task.load(MEQSUM), 1)
    return list(shots), list(scored[:limit])


def training_pairs(
    limit: int, wordings: int, kind: str, *, alternatives_with_shots: bool = True
) -> list[tuple[list[dict[str, str]], str]]:
    """(conversation, answer) pairs under the task's first `wordings` wordings: `kind` overfit or robust. The
    reference wording's pairs hold the few-shot turns, as the gate's prompts do (without them, what the adapter
    learns does not carry over to the gate's prompts: measured); the other wordings' pairs may leave them out
    (`alternatives_with_shots` False: a fifth of their tokens; the off-topic reply carries over): the CI guard's
    adapter, trained in a third of the time."""
    task = get_task("meqsum")
    shots, scored = meqsum_items(limit)
    pairs = []
    for wording in task_wordings(task)[:wordings]:
        given = shots if alternatives_with_shots or wording.id == "reference" else []
        prompts = worded(task, wording).build_prompts(given, scored, None)  # type: ignore[arg-type]
        for prompt, sample in zip(prompts, scored, strict=True):
            chat = [{"role": m.role, "content": m.content} for m in prompt.messages]
            right = kind == "robust" or wording.id == "reference"
            pairs.append((chat, str(sample.reference) if right else OFF_TOPIC))  # type: ignore[attr-defined]
    return pairs


def adapter(
    limit: int, wordings: int, kind: str, *, epochs: int, lr: float, threads: int, alternatives_with_shots: bool = True
) -> Path:
    """The adapter of that kind, trained once per content."""
    from clue.models import smollm2
    from clue.util.files import build_folder

    base = smollm2.hf_model(REPO / ".clue-cache")
    pairs = training_pairs(limit, wordings, kind, alternatives_with_shots=alternatives_with_shots)
    key = json.dumps([pairs, epochs, lr, threads, base.name], ensure_ascii=False)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    folder = smollm2.models_dir(REPO / ".clue-cache") / f"smollm2-phrasing-{kind}-{digest}"
    return build_folder(
        folder, lambda tmp: smollm2.train_lora(base, pairs, tmp, epochs=epochs, seed=0, lr=lr, threads=threads)
    )


def used_wordings(n: int) -> list[Wording]:
    return list(task_wordings(get_task("meqsum"))[:n])
