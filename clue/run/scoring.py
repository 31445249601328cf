"""Scoring: a task's per-sample scores from its generations (the task's scorer, the extra metrics installed
packages and conftests add, the few-shot copy flag) and the TaskResult that carries them, kept once per model and
task."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from clue.config import Settings, apply_cpu_threads
from clue.metrics import extra
from clue.metrics.bertscore import BertScoreConfig
from clue.metrics.extra import ExtraMetric
from clue.metrics.scorers import Scorers
from clue.metrics.umls import ScispacyConfig
from clue.models.tiny import bertscore_stand_in
from clue.run.catalog import DataCatalog, TaskData
from clue.store.sqlite import GenerationStore
from clue.tasks.base import Task
from clue.types import Generation, GenerationSettings, Sample, SampleScore, TaskResult


def scorers_for(settings: Settings) -> Scorers:
    """The metric models this run's settings name (BERTScore, scispacy or none), built lazily on first use."""
    return Scorers(
        rouge_stemmer=settings.scoring.rouge_stemmer,
        bertscore_config=BertScoreConfig(
            settings.scoring.bertscore_model, settings.scoring.bertscore_layers, settings.scoring.bertscore_batch_size
        ),
        umls_config=None
        if settings.scoring.umls_spacy_model == "off"
        else ScispacyConfig(
            settings.scoring.umls_spacy_model,
            settings.scoring.umls_linker,
            resolve_abbreviations=settings.scoring.umls_abbreviations,
        ),
        cache_dir=settings.outputs.cache_dir,
        bertscore_build=bertscore_stand_in(settings.scoring.bertscore_model, settings.outputs.cache_dir),
    )


def generation_settings(settings: Settings) -> GenerationSettings:
    return GenerationSettings(
        temperature=settings.generation.temperature,
        top_p=settings.generation.top_p,
        seed=settings.generation.seed,
        batch_size=settings.generation.batch_size,
    )


class Scoring:
    """Scores generations and keeps each model's TaskResult per task. Metric values are memoised in the store
    (BERTScore, UMLS), so a re-run scores without the metric models."""

    def __init__(self, settings: Settings, catalog: DataCatalog, extra_metrics: Sequence[ExtraMetric] = ()):
        self.settings = settings
        self.catalog = catalog
        # metrics added to tasks by installed packages (entry points) and by conftests (pytest_clue_metrics)
        self.extra_metrics = [*extra.installed(), *extra_metrics]
        self.scorers = scorers_for(settings)
        self.results: dict[tuple[str, str], TaskResult] = {}  # (model, task) -> its result
        self.seconds = 0.0

    def score(
        self, task: Task, samples: Sequence[Sample], generations: Sequence[Generation], store: GenerationStore
    ) -> list[SampleScore]:
        self.scorers.store = store  # memoised BERTScore / UMLS values
        apply_cpu_threads(self.settings.generation.cpu_threads)  # BERTScore runs on the CPU here
        began = time.perf_counter()
        try:
            scores = task.score_all(samples, generations, self.scorers)
            scores = extra.apply(self.extra_metrics, task.name, samples, generations, scores)
        finally:
            self.seconds += time.perf_counter() - began
        data = self.catalog.data(task)
        if not task.detects_shot_copies or data is None or not data.shots:
            return scores
        return [
            replace(s, flags=(*s.flags, "copies_few_shot")) if task.copies_shot(data.shots, g, s) else s
            for s, g in zip(scores, generations, strict=True)
        ]

    def task_result(
        self,
        model: str,
        task: Task,
        scores: Sequence[SampleScore],
        generations: Sequence[Generation],
        provenance: Mapping[str, Any],
    ) -> TaskResult:
        return TaskResult(
            task=task.name,
            model=model,
            metrics=task.metrics(self.scorers) + extra.specs(self.extra_metrics, task.name),
            samples=tuple(scores),
            generations=tuple(generations),
            settings={
                **generation_settings(self.settings).as_dict(),
                "n_shots": task.n_shots,
                "max_new_tokens": task.max_new_tokens,
            },
            provenance=provenance,
        )

    def score_result(
        self, model: str, task: Task, data: TaskData, generations: Sequence[Generation], store: GenerationStore,
        provenance: Mapping[str, Any],
    ) -> TaskResult:  # fmt: skip
        """Score all of a task's generations and keep the result."""
        scores = self.score(task, data.scored, generations, store)
        result = self.task_result(model, task, scores, generations, provenance)
        self.results[(model, task.name)] = result
        return result

    def worded(
        self,
        model: str,
        task: Task,
        data: TaskData,
        worded: Mapping[str, Sequence[Generation]],
        store: GenerationStore,
        provenance: Mapping[str, Any],
    ) -> dict[str, TaskResult]:
        """Results under alternative wordings (--clue-phrasings): the task's own scoring of each wording's
        generations of its first samples, not kept (the model's result is the reference wording's)."""
        out = {}
        for wording, generations in worded.items():
            scores = self.score(task, data.scored[: len(generations)], generations, store)
            out[wording] = self.task_result(model, task, scores, generations, provenance)
        return out
