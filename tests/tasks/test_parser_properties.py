"""Property-based tests (hypothesis): every output parser takes arbitrary model output — empty, huge, unicode,
repeated tokens, markdown, code fences, reasoning blocks — without crashing, and the metrics keep their invariants
(scores in [0, 1], identical prediction and reference score 1, order of codes irrelevant, ...).

Examples per test are fixed (`EXAMPLES`), derandomised so that CI is reproducible; the figures in the issue notes
come from these settings."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clue.data.medisumqa import parse_pairs
from clue.metrics import icd10, rouge
from clue.metrics.umls import set_prf
from clue.report.flags import is_repetition_loop
from clue.statistics import paired as stats
from clue.tasks import get_task
from clue.tasks.base import strip_reasoning
from clue.tasks.longhealth import parse_choice
from clue.tasks.mednli import parse_label
from clue.tasks.problem_summary import clean_summary
from clue.types import Generation, Sample

EXAMPLES = 300
PROPERTY = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

WORDS = st.sampled_from(
    [
        "ENTAILMENT",
        "neutral",
        "Contradiction",
        "A",
        "F",
        "The answer is",
        "I10",
        "E11.9",
        "ICD-10 Codes:",
        "J18.9",
        "```",
        "**",
        "#",
        "<think>",
        "</think>",
        "\n",
        " ",
        "é",
        "中文",
        "🙂",
        "\u200b",
        "\x00",
        "Q:",
        "A:",
        "None",
    ]
)
# model-output-like text: free unicode, clinical tokens, markdown, code fences, reasoning blocks, repetition
OUTPUT = st.one_of(
    st.text(max_size=400),
    st.lists(WORDS, max_size=80).map(" ".join),
    st.builds(lambda w, n: w * n, st.text(min_size=1, max_size=8), st.integers(1, 3000)),  # repeated, up to 24k
    st.builds(lambda body, lang: f"```{lang}\n{body}\n```", st.text(max_size=200), st.sampled_from(["", "json"])),
    st.builds(lambda r, a: f"<think>{r}</think>{a}", st.text(max_size=200), st.lists(WORDS, max_size=20).map(" ".join)),
)
CODES = st.lists(
    st.sampled_from(["I10", "E119", "E785", "J189", "N179", "I5022", "K219", "F329", "Z9999", "X"]), max_size=12
)


@PROPERTY
@given(OUTPUT)
def test_mednli_parser_never_crashes_and_names_at_most_one_label(text: str) -> None:
    label = parse_label(text)
    assert label in (None, "ENTAILMENT", "NEUTRAL", "CONTRADICTION")


@PROPERTY
@given(OUTPUT)
def test_longhealth_parser_returns_a_letter_or_none(text: str) -> None:
    assert parse_choice(text) in (None, *"ABCDEF")


@PROPERTY
@given(OUTPUT)
def test_icd_parser_returns_distinct_normalised_codes(text: str) -> None:
    codes = icd10.parse_codes(text)
    assert len(codes) == len(set(codes))
    assert all(code == icd10.normalize(code) and "." not in code for code in codes)


@PROPERTY
@given(st.text(max_size=100).filter(lambda r: "<" not in r), OUTPUT)
def test_reasoning_is_stripped_and_summary_cleaning_is_total(reasoning: str, text: str) -> None:
    assert "SECRET-THOUGHT" not in strip_reasoning(f"<think>SECRET-THOUGHT {reasoning}</think>{text}")
    assert "SECRET-THOUGHT" not in strip_reasoning(f"SECRET-THOUGHT {reasoning}</think>{text}")  # template opened it
    unclosed = f"{text.replace('</', '')}<think>unclosed SECRET-THOUGHT {reasoning}"
    assert strip_reasoning(unclosed) == unclosed  # stopped while reasoning: scored as written
    assert isinstance(clean_summary(text), str)
    assert isinstance(is_repetition_loop(text), bool)
    assert all(q and a for q, a in parse_pairs(text))


@PROPERTY
@given(OUTPUT)
def test_task_scorers_take_any_output(text: str) -> None:
    """The per-sample scorers of the non-text tasks: every score in [0, 1], never NaN."""
    generation = Generation("s", text, 1, 1, "stop", 0.0)
    cases = [
        ("mednli", Sample("s", {}, "neutral")),
        ("medisumcode", Sample("s", {}, ["I10", "E119"])),
        ("longhealth_task1", Sample("s", {"options": dict.fromkeys("ABCDE", "x")}, "C")),
        ("longhealth_task3", Sample("s", {"options": dict.fromkeys("ABCDEF", "y z")}, "F")),
    ]
    for task_name, sample in cases:
        score = get_task(task_name).score(sample, generation)
        assert all(0.0 <= v <= 1.0 and not math.isnan(v) for v in score.scores.values()), (task_name, score)


@PROPERTY
@given(CODES, CODES, st.booleans())
def test_icd_f1_bounds_order_and_identity(predicted: list[str], gold: list[str], approximate: bool) -> None:
    p, r, f = icd10.prf(predicted, gold, approximate=approximate)
    assert all(0.0 <= v <= 1.0 for v in (p, r, f))
    assert (p, r, f) == icd10.prf(list(reversed(predicted)), list(reversed(gold)), approximate=approximate)
    if gold:
        assert icd10.prf(gold, gold, approximate=approximate) == (1.0, 1.0, 1.0)
    assert 0.0 <= icd10.valid_share(predicted) <= 1.0


@PROPERTY
@given(st.sets(st.text(max_size=5), max_size=8), st.sets(st.text(max_size=5), max_size=8))
def test_concept_f1_bounds_and_identity(predicted: set[str], reference: set[str]) -> None:
    p, r, f = set_prf(predicted, reference)
    assert all(0.0 <= v <= 1.0 for v in (p, r, f))
    if reference:
        assert set_prf(reference, reference) == (1.0, 1.0, 1.0)
    assert set_prf(predicted, reference)[2] == set_prf(reference, predicted)[2]  # F1 is symmetric


@settings(max_examples=100, derandomize=True, deadline=None)
@given(
    st.lists(st.text(alphabet=st.characters(codec="utf-8"), max_size=60), min_size=1, max_size=5),
    st.lists(st.text(max_size=60), min_size=1, max_size=5),
)
def test_rouge_bounds_and_identity(predictions: list[str], references: list[str]) -> None:
    n = min(len(predictions), len(references))
    scores = rouge.rouge(predictions[:n], references[:n])
    assert all(0.0 <= v <= 1.0 for s in scores for v in s.values())
    for text, same in zip(references[:n], rouge.rouge(references[:n], references[:n]), strict=True):
        if any(ch.isalnum() and ch.isascii() for ch in text):  # rouge-score's tokenizer keeps [a-z0-9] only
            assert same == {"rouge1": 1.0, "rouge2": same["rouge2"], "rougeL": 1.0}


PAIRS = st.integers(10, 80).flatmap(
    lambda n: st.tuples(
        st.lists(st.sampled_from([0.0, 1.0]), min_size=n, max_size=n),
        st.lists(st.sampled_from([0.0, 1.0]), min_size=n, max_size=n),
    )
)


@settings(max_examples=150, derandomize=True, deadline=None)
@given(PAIRS)
def test_paired_binary_test_is_coherent(pairs: tuple[list[float], list[float]]) -> None:
    model, base = pairs
    c = stats.paired_binary(model, base)
    assert c.ci_low - 1e-12 <= c.delta <= c.ci_high + 1e-12  # equal up to rounding when all pairs go one way
    assert 0.0 <= c.p_regression <= 1.0 and 0.0 <= c.p_noninferior <= 1.0
    assert (c.verdict == "regressed") == (c.ci_high < -c.margin)
    assert (c.verdict == "regressed") == (c.p_regression < c.alpha)
    same = stats.paired_binary(base, base)
    assert same.delta == 0.0 and same.verdict != "regressed"


@settings(max_examples=60, derandomize=True, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=10, max_size=60), st.floats(-0.3, 0.3))
def test_bootstrap_is_coherent_and_shift_equivariant(base: list[float], shift: float) -> None:
    model = [min(1.0, max(0.0, b + shift)) for b in base]
    c = stats.paired_bootstrap(model, base, resamples=400)
    assert c.ci_low <= c.ci_high and all(math.isfinite(v) for v in (c.ci_low, c.ci_high, c.delta))
    assert stats.paired_bootstrap(model, base, resamples=400) == c  # seeded: reproducible
    low, high = stats.mean_ci(base, resamples=400)
    assert min(base) - 1e-12 <= low <= high <= max(base) + 1e-12


LOOPY = st.one_of(
    OUTPUT,
    st.builds(
        lambda head, unit, n, tail: head + unit * n + tail,
        st.text(max_size=40),
        st.text(min_size=2, max_size=12),
        st.integers(1, 40),
        st.text(max_size=40),
    ),
)


@PROPERTY
@given(LOOPY)
def test_fast_loop_detector_covers_at_least_what_the_regex_definition_matches(text: str) -> None:
    from clue.report.flags import _LOOP, _loop_coverage

    by_regex = sum(m.end() - m.start() for m in _LOOP.finditer(text))
    assert _loop_coverage(text) >= by_regex
    if len(text.strip()) >= 16 and by_regex >= len(text.strip()) / 2 and text == text.strip():
        assert is_repetition_loop(text)
