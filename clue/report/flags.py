"""Degenerate-output flags per sample: the failure modes CLUE's authors found (empty answers, repetition loops,
hallucinated ICD codes) plus what the harness itself knows (parse failures, token limit, truncated input)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from clue.types import Generation, SampleScore

_LOOP = re.compile(r"(.{2,80}?)\1{7,}", re.DOTALL)  # the definition: a 2-80 char unit repeated 8+ times (tests)


def _loop_coverage(text: str) -> int:
    """Characters inside a run where a unit of 2-80 characters repeats 8+ times in a row (what _LOOP matches),
    with array operations per unit length (the regex took ~2.5 ms per 512-token output)."""
    import numpy as np

    a = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    n = len(a)
    marks = np.zeros(n + 1, dtype=np.int32)
    found = False
    for k in range(2, min(80, n // 8) + 1):
        span = 7 * k  # a unit and 7 more copies: a[i] == a[i + k] on 7k consecutive positions
        csum = np.concatenate(([0], np.cumsum(a[:-k] == a[k:], dtype=np.int32)))
        starts = np.flatnonzero(csum[span:] - csum[:-span] == span)
        if len(starts):
            found = True
            np.add.at(marks, starts, 1)
            np.add.at(marks, np.minimum(starts + 8 * k, n), -1)  # a run from i covers i .. i + 8k - 1
    return int((np.cumsum(marks[:n]) > 0).sum()) if found else 0


def is_repetition_loop(text: str) -> bool:
    """True when a repeated unit covers at least half of the answer, or the words are mostly one 4-gram cycle."""
    stripped = text.strip()
    if len(stripped) < 16:
        return False
    if _loop_coverage(stripped) >= len(stripped) / 2:
        return True
    words = stripped.split()
    if len(words) >= 24:
        grams = [tuple(words[i : i + 4]) for i in range(len(words) - 3)]
        return len(set(grams)) / len(grams) < 0.25
    return False


def output_flags(generation: Generation, score: SampleScore, detail: Mapping[str, Any]) -> list[str]:
    flags = list(score.flags)
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
