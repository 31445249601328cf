"""What a privacy scan looks for: the credentialed fixtures' raw ids and every sentence-like piece of their text."""

from __future__ import annotations

import re

from clue.tasks import get_task
from clue.types import Sample
from tests.helpers import FIXTURE_DATA

CREDENTIALED = {
    "mednli": "mednli/mli_test_v1.jsonl",
    "problem_summary": "problem_summary/BioNLP2023-1A-Test.csv",
    "medisumqa": "medisumqa/MeDiSumQA.json",
    "medisumcode": "medisumcode/MeDiSumCode.json",
}


def _samples() -> dict[str, list[Sample]]:
    return {name: get_task(name).load(FIXTURE_DATA / file) for name, file in CREDENTIALED.items()}


def _secrets(samples: dict[str, list[Sample]]) -> tuple[set[str], set[str]]:
    """Raw ids, and text snippets: every sentence-like piece of 24+ characters of every field and reference."""
    ids: set[str] = set()
    snippets: set[str] = set()
    for name, items in samples.items():
        for sample in items:
            ids.add(sample.id)
            if "/" in sample.id:  # MeDiSumQA: note_id/question
                ids.update(part for part in sample.id.split("/", 1) if len(part) >= 4)
            texts = [v for v in sample.fields.values() if isinstance(v, str)]
            texts += [sample.reference] if isinstance(sample.reference, str) else []
            for text in texts:
                for piece in re.split(r"(?<=[.!?;:])\s+|\n+", text):
                    piece = piece.strip()
                    if len(piece) >= 24:
                        snippets.add(piece[:60])
        assert ids and snippets, name
    return ids, snippets
