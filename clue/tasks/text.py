"""Shared scoring for the free-text tasks (MeQSum, Problem Summary, MeDiSumQA): ROUGE-1/2/L, BERTScore, and
UMLS-entity F1 where the task uses it. BERTScore and UMLS run batched over the whole task (one model load each per
session, shared by all tasks and models)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from clue.metrics import bertscore, rouge, umls
from clue.metrics.scorers import Scorers
from clue.tasks.base import Task, strip_reasoning
from clue.types import Generation, MetricSpec, Sample, SampleScore

SCORED_MAX_CHARS = 100_000  # an output's characters that are scored (docs/conformance.md)


class TextTask(Task):
    uses_umls: ClassVar[bool] = False

    def detail(self, sample: Sample, score: SampleScore) -> dict[str, Any]:
        return {}  # concept lists come from free text: only shown with the sample text itself

    def render_answer(self, sample: Sample) -> str:
        return str(sample.reference)

    def metrics(self, scorers: Scorers | None = None) -> tuple[MetricSpec, ...]:
        if scorers is None:  # the definitions: no metric model is looked at
            specs = rouge.metric_specs(False) + bertscore.metric_specs({})
            return specs + (umls.metric_specs({}) if self.uses_umls else ())
        specs = rouge.metric_specs(scorers.rouge_stemmer) + bertscore.metric_specs(scorers.bertscore_fingerprint())
        if self.uses_umls and scorers.umls_config is not None:
            specs += umls.metric_specs(scorers.umls_fingerprint())
        return specs

    def score(self, sample: Sample, generation: Generation) -> SampleScore:
        raise NotImplementedError("text tasks are scored in batches: use score_all")

    def score_all(
        self, samples: Sequence[Sample], generations: Sequence[Generation], scorers: Scorers
    ) -> list[SampleScore]:
        answers = [strip_reasoning(g.text).strip() for g in generations]
        # a recorded (replayed) output can be of any size; spaCy refuses texts over 1,000,000 characters (E088) and
        # ROUGE-L's table grows with the output's length: an output over SCORED_MAX_CHARS is scored on its prefix,
        # and the sample says so (flag "scored_prefix"). A live one (at most 512 new tokens) never comes near it.
        predictions = [a[:SCORED_MAX_CHARS] for a in answers]
        references = [str(s.reference)[:SCORED_MAX_CHARS] for s in samples]
        rouges = rouge.rouge(predictions, references, use_stemmer=scorers.rouge_stemmer)
        berts = scorers.bertscore_pairs(predictions, references)
        concepts: list[tuple[set[str], set[str]]] = []
        if self.uses_umls and scorers.umls_config is not None:
            extracted = scorers.concepts(predictions + references)
            concepts = list(zip(extracted[: len(predictions)], extracted[len(predictions) :], strict=True))
        out = []
        for i, sample in enumerate(samples):
            scores = dict(rouges[i])
            scores["bertscore_precision"], scores["bertscore_recall"], scores["bertscore_f1"] = berts[i]
            parsed: dict[str, list[str]] = {}
            if concepts:
                pred, ref = concepts[i]
                scores["umls_precision"], scores["umls_recall"], scores["umls_f1"] = umls.set_prf(pred, ref)
                parsed = {"concepts_predicted": sorted(pred), "concepts_reference": sorted(ref)}
            flags = ("scored_prefix",) if len(answers[i]) > SCORED_MAX_CHARS else ()
            out.append(SampleScore(sample.id, scores, parsed or None, bool(predictions[i]), flags=flags))
        return out
