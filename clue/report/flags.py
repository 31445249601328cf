"""Degenerate-output flags per sample: the failure modes CLUE's authors found (empty answers, repetition loops,
hallucinated ICD codes) plus what the harness itself knows (parse failures, token limit, truncated input)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from clue.types import Generation, SampleScore

_LOOP = re.compile(r"(.{2,80}?)\1{7,}", re.DOTALL)  # a unit of 2-80 characters repeated 8+ times in a row


def is_repetition_loop(text: str) -> bool:
    """True when a repeated unit covers at least half of the answer, or the words are mostly one 4-gram cycle."""
    stripped = text.strip()
    if len(stripped) < 16:
        return False
    covered = sum(m.end() - m.start() for m in _LOOP.finditer(stripped))
    if covered >= len(stripped) / 2:
        return True
    words = stripped.split()
    if len(words) >= 24:
        grams = [tuple(words[i : i + 4]) for i in range(len(words) - 3)]
        return len(set(grams)) / len(grams) < 0.25
    return False


def output_flags(generation: Generation, score: SampleScore, detail: Mapping[str, Any]) -> list[str]:
    flags = []
    if generation.error:
        flags.append("generation_error")
    if not generation.text.strip():
        flags.append("empty")
    elif is_repetition_loop(generation.text):
        flags.append("repetition_loop")
    if generation.finish_reason == "length":
        flags.append("hit_token_limit")
    if not score.parse_ok:
        flags.append("parse_failure")
    if detail.get("invalid_codes"):
        flags.append("invalid_codes")
    if generation.truncated_tokens > 0:
        flags.append("truncated_input")
    return flags
