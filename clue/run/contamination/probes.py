"""The contamination diagnostic's probes: which samples, which prompt, which answers are scored (README,
"Contamination diagnostic"). Built the same way for the candidate, its base and a stored baseline, so the three
score the same texts.

A probe is a sample's zero-shot prompt (the task's system prompt and the sample's user turn, no few-shot turns: a
fine-tuning mix holds an item as question and answer, not inside CLUE's few-shot block) with its reference answer
(`Task.render_answer`) and that answer's perturbed neighbours (clue/tasks/neighbours.py) as targets.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from clue.statistics import sequential
from clue.store.fingerprint import file_sha256
from clue.store.sqlite import canonical
from clue.tasks.base import Task
from clue.tasks.neighbours import neighbours, vocabulary
from clue.types import Sample, TargetRequest, TokenCounter

__all__ = [
    "NEIGHBOURS",
    "PROBE_VERSION",
    "SEED",
    "SHARE",
    "Probe",
    "ProbeSettings",
    "build_probes",
    "probe_order",
    "probed_samples",
]

PROBE_VERSION = 2  # bump when the prompt, the targets or the neighbours change: stored scores are then recomputed
NEIGHBOURS = 4  # per reference answer
SHARE = 0.25  # of an answer's words a neighbour replaces
SEED = 1  # of the neighbours: fixed, so that a stored baseline's base side scored the same texts


@dataclass(frozen=True)
class ProbeSettings:
    """What determines the probes besides the data: how many samples, neighbours per answer, the share of words a
    neighbour replaces, the seed."""

    items: int
    neighbours: int
    share: float
    seed: int

    @classmethod
    def of(cls, items: int) -> ProbeSettings:
        """The run's probes: --clue-contamination-items samples, the fixed neighbours."""
        return cls(items, NEIGHBOURS, SHARE, SEED)

    def as_dict(self) -> dict[str, float | int]:
        return {
            "version": PROBE_VERSION,
            "items": self.items,
            "neighbours": self.neighbours,
            "share": self.share,
            "seed": self.seed,
        }


@dataclass(frozen=True)
class Probe:
    """One sample's probe: its request (targets: the reference answer first, then its neighbours) and a digest of
    what is scored, which a stored baseline's base side must match."""

    sample_id: str
    request: TargetRequest

    @property
    def digest(self) -> str:
        messages = [[m.role, m.content] for m in self.request.prompt.messages]
        payload = canonical({"v": PROBE_VERSION, "messages": messages, "targets": list(self.request.targets)})
        return hashlib.sha256(payload.encode()).hexdigest()


def probe_order(task: Task, samples: Sequence[Sample], digest: str) -> tuple[Sample, ...]:
    """Every sample of a test file in the order the diagnostic probes them: seeded by the task and the file's bytes
    alone (`digest`), so the probes do not change with --clue-limit, the few-shot seed or --clue-sequential, and a
    baseline saved at one limit serves a run at another."""
    ranks = sequential.order(
        [s.id for s in samples], [task.cluster_of(s) for s in samples], f"{task.name}\0probes\0{digest}"
    )
    return tuple(samples[i] for i in ranks)


def probed_samples(task: Task, path: Path, items: int) -> list[Sample]:
    """The samples of the test file at `path` that a run with --clue-contamination-items `items` probes, in order:
    what a model that memorised the probed items was trained on (the tests' and studies' memorising adapters)."""
    pool = probe_order(task, task.load(path), file_sha256(path))
    chosen = {p.sample_id for p in build_probes(task, pool, None, ProbeSettings.of(items))}
    return [s for s in pool if s.id in chosen]


def build_probes(
    task: Task, samples: Sequence[Sample], counter: TokenCounter | None, settings: ProbeSettings
) -> list[Probe]:
    """The probes of the first `settings.items` of `samples` (the test file's samples in their fixed probe order,
    `TaskData.probe_pool`, or the reference items) whose answers have neighbours: an answer that is a label or a
    letter has none and is left out. The neighbours' vocabulary is every answer of `samples`."""
    answers = [task.render_answer(s) for s in samples]
    vocab = vocabulary(answers)
    chosen: list[tuple[Sample, tuple[str, ...]]] = []
    for sample, answer in zip(samples, answers, strict=True):
        if len(chosen) == settings.items:
            break
        near = neighbours(
            answer, vocab, k=settings.neighbours, share=settings.share, seed=f"{task.name}:{settings.seed}"
        )
        if near:
            chosen.append((sample, (answer, *near)))
    prompts = task.build_prompts((), [s for s, _ in chosen], counter)
    return [
        Probe(sample.id, TargetRequest(prompt, targets))
        for (sample, targets), prompt in zip(chosen, prompts, strict=True)
    ]
