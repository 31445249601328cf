"""MedNLI: natural language inference on MIMIC-III sentences (Level 1, accuracy, 3-shot).

Reads the published `mli_test_v1.jsonl` (one JSON object per line with sentence1, sentence2, gold_label, pairID,
and parse trees we do not need). Prompts follow CLUE's eval_mednli.py.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from clue.errors import DataError, describe
from clue.metrics.accuracy import ACCURACY, accuracy
from clue.metrics.scorers import Scorers
from clue.tasks.base import (
    Task,
    check_unique_ids,
    read_json_records,
    record_id,
    require_str,
    strip_reasoning,
)
from clue.types import Generation, MetricSpec, Sample, SampleScore

LABELS = ("ENTAILMENT", "NEUTRAL", "CONTRADICTION")
FIELDS = ("sentence1", "sentence2", "gold_label", "pairID")
# found anywhere in the upper-cased answer, as CLUE's compute_metrics finds them (re.findall(label.upper(), ...)):
# "entailments" and "NEUTRALITY" name a label there, so they do here
_LABEL = re.compile(r"ENTAILMENT|NEUTRAL|CONTRADICTION")


def parse_label(text: str) -> str | None:
    """The one label the answer names, or None.

    A label is found as CLUE finds it: anywhere in the upper-cased answer, so plural and embedded forms count
    ("Both statements are entailments"). The answer must name exactly one of the three labels (repeated or not):
    one that names two ("ENTAILMENT or NEUTRAL") or none is unparseable and scored wrong. CLUE counted an answer
    right when the gold label appeared exactly once, so "ENTAILMENT, not CONTRADICTION" scored as correct for
    either gold label and "NEUTRAL. The answer is NEUTRAL." as wrong; we do not (docs/conformance.md, D5).
    """
    found = set(_LABEL.findall(strip_reasoning(text).upper()))
    return found.pop() if len(found) == 1 else None


class MedNLI(Task):
    name = "mednli"
    title = "MedNLI"
    level = 1
    primary_metric = "accuracy"
    n_shots = 3
    max_new_tokens = 20
    data_files = ("mli_test_v1.jsonl",)
    detects_shot_copies = False  # every answer is one of three labels, as every shot's is
    protocol_version = 2  # 2: CLUE's system prompt verbatim ("recieve"), labels found as substrings
    system_prompt = (
        "You are a highly skilled assistant, specifically trained to assist medical professionals. You will "
        # "recieve" as in CLUE's eval_mednli.py: a corrected typo would still change every prompt
        "recieve two sentences, labeled 'SENTENCE_1' and 'SENTENCE_2', respectively. Your task is to determine the "
        "logical relation between the two sentences. Valid answers are: ENTAILMENT, NEUTRAL or CONTRADICTION."
    )
    wording_terms = ("ENTAILMENT", "NEUTRAL", "CONTRADICTION")
    wordings = (
        "You support clinicians. Each input holds two sentences, SENTENCE_1 and SENTENCE_2. Decide whether the first "
        "entails the second, contradicts it, or neither. Answer with one word: ENTAILMENT, NEUTRAL or CONTRADICTION.",
        "Read SENTENCE_1 (the premise) and SENTENCE_2 (the hypothesis), both taken from a patient's record. If the "
        "premise implies the hypothesis, answer ENTAILMENT; if it rules it out, answer CONTRADICTION; otherwise "
        "answer NEUTRAL.",
        "As a medical assistant, compare the two statements labelled SENTENCE_1 and SENTENCE_2 and classify how they "
        "relate. Reply ENTAILMENT, NEUTRAL or CONTRADICTION and nothing else.",
        "Natural language inference on clinical notes: given SENTENCE_1 and SENTENCE_2, say whether SENTENCE_2 "
        "follows from SENTENCE_1 (ENTAILMENT), is contradicted by it (CONTRADICTION), or cannot be decided from it "
        "(NEUTRAL). Give only the label.",
    )

    def metrics(self, scorers: Scorers | None = None) -> tuple[MetricSpec, ...]:
        return (ACCURACY,)

    def load(self, path: Path) -> list[Sample]:
        samples = []
        for where, record in read_json_records(path, FIELDS):
            s1 = require_str(path, where, record, "sentence1")
            s2 = require_str(path, where, record, "sentence2")
            written = require_str(path, where, record, "gold_label")
            label = written.strip().upper()
            if label not in LABELS:
                problem = f"{describe(written)}, not one of {', '.join(LABELS).lower()}"
                raise DataError(path, problem, record=where, field="gold_label")
            sample_id = record_id(path, where, record, ("pairID",)) or where
            fields = {"sentence1": s1, "sentence2": s2, "gold_label": written}
            samples.append(Sample(sample_id, fields, label, f"{path}:{where}"))
        check_unique_ids(path, self.name, samples)
        return samples

    def render_user(self, sample: Sample) -> str:
        # CLUE's user_prompt_template, leading and trailing newline included
        return f"\nSENTENCE_1: {sample.fields['sentence1']}\nSENTENCE_2: {sample.fields['sentence2']}\n"

    def shot_balance(self, shots: Sequence[Sample]) -> dict[str, int]:
        """Labels of the three few-shot examples: a seeded draw may give one label twice or thrice, which a small
        model then favours; the provenance shows it."""
        return dict(sorted(Counter(str(s.reference) for s in shots).items()))

    def render_answer(self, sample: Sample) -> str:
        # the label as written in the data file ("entailment"), as CLUE's assistant_response_template renders it
        return str(sample.fields["gold_label"])

    def score(self, sample: Sample, generation: Generation) -> SampleScore:
        label = parse_label(generation.text)
        return SampleScore(sample.id, {"accuracy": accuracy(label, sample.reference)}, label, label is not None)
