"""LongHealth: benchmark validation, sub-task expansion, the token budget (answer documents first), per-document
token caching, answer parsing, clustering for the gate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clue.errors import DataError
from clue.tasks.longhealth import SEPARATOR, UNANSWERABLE, parse_choice
from clue.types import ChatMessage, Generation
from tests.helpers import FIXTURE_DATA
from tests.helpers.standins import longhealth_task

BENCH = FIXTURE_DATA / "longhealth" / "benchmark_v5.json"


class WordCounter:
    """Counts words as tokens and records every count call (to check caching is the caller's business)."""

    def __init__(self, context: int):
        self.context = context
        self.calls: dict[str, int] = {}

    def count(self, text: str) -> int:
        self.calls[text] = self.calls.get(text, 0) + 1
        return len(text.split())

    def count_prompt(self, messages: tuple[ChatMessage, ...]) -> int:
        return sum(len(m.content.split()) for m in messages) + 10


@pytest.mark.parametrize("name", ["longhealth_task1", "longhealth_task2", "longhealth_task3"])
def test_subtasks_expand_questions_into_repetitions(name: str) -> None:
    task = longhealth_task(name)
    samples = task.load(BENCH)
    assert len(samples) == 12 * 5
    first = samples[0]
    assert first.id == "patient_01/q0/r0"
    if name == "longhealth_task1":
        # CLUE's task 1: the answer documents, then the patient's own other documents (no other patients')
        data = json.loads(BENCH.read_text())["patient_01"]
        own = [t for k, t in data["texts"].items() if k not in data["questions"][0]["answer_location"]]
        assert list(first.fields["distractors"]) == own and len(first.fields["answer_docs"]) == 2
        assert first.reference == "A" and "F" not in first.fields["options"]
    elif name == "longhealth_task2":
        # 10 distractors when other patients have that many documents; the fixture's other 3 patients have 9
        assert len(first.fields["distractors"]) == 9 and first.fields["options"]["F"] == UNANSWERABLE
    else:
        assert first.fields["answer_docs"] == () and first.reference == "F"


def test_distractors_come_from_other_patients_and_vary_by_repetition() -> None:
    data = json.loads(BENCH.read_text())
    own = set(data["patient_01"]["texts"].values())
    samples = longhealth_task("longhealth_task2").load(BENCH)
    reps = [s for s in samples if s.id.startswith("patient_01/q0/")]
    assert all(not own & set(s.fields["distractors"]) for s in reps)
    assert len({s.fields["distractors"] for s in reps}) > 1
    assert longhealth_task("longhealth_task2").load(BENCH)[0].fields == samples[0].fields  # seeded


def test_budget_keeps_answer_documents_first_and_counts_what_it_cut() -> None:
    task = longhealth_task("longhealth_task2")
    sample = task.load(BENCH)[0]
    answer_words = sum(len(d.split()) for d in sample.fields["answer_docs"])
    counter = WordCounter(context=answer_words + 2000)
    prompt = task.fit_prompt(sample, counter)
    user = prompt.messages[-1].content
    assert all(doc in user for doc in sample.fields["answer_docs"])  # both answer documents kept whole
    total = answer_words + sum(len(d.split()) for d in sample.fields["distractors"])
    assert 0 < prompt.truncated_tokens < total
    assert counter.count_prompt(prompt.messages) <= counter.context - task.max_new_tokens


def test_budget_smaller_than_the_answer_documents_cuts_the_answer_document() -> None:
    task = longhealth_task("longhealth_task1")
    sample = task.load(BENCH)[0]
    counter = WordCounter(context=1500)
    prompt = task.fit_prompt(sample, counter)
    assert prompt.truncated_tokens > 0
    assert counter.count_prompt(prompt.messages) <= 1500 - task.max_new_tokens
    assert prompt.messages[-1].content.count(SEPARATOR) <= 1  # at most the first document and a cut second


def test_document_tokens_are_counted_by_the_counter_not_per_prompt_by_the_task() -> None:
    """The task asks the counter for each document; the transformers counter caches by content."""
    from clue.backends.chat import ChatTokenizer

    calls = []

    class Spy(ChatTokenizer):
        def __init__(self) -> None:
            self._counts = {}

        def encode(self, text: str) -> list[int]:
            calls.append(text)
            return text.split()  # type: ignore[return-value]

    spy = Spy()
    assert spy.count("a b c") == 3 and spy.count("a b c") == 3
    assert calls == ["a b c"]


def test_prompt_order_is_shuffled_but_reproducible() -> None:
    task = longhealth_task("longhealth_task1")
    samples = task.load(BENCH)[:5]
    counter = WordCounter(context=100_000)
    texts = [task.fit_prompt(s, counter).messages[-1].content for s in samples]
    assert texts == [task.fit_prompt(s, counter).messages[-1].content for s in samples]
    assert len(set(texts)) > 1  # same question, different document order per repetition


@pytest.mark.parametrize(
    ("text", "choice"),
    [
        ("The correct answer is C: complete remission.", "C"),
        ("the correct answer is (b): stable disease", None),  # CLUE's format only: capital T, no brackets
        ("The correct answer is c: stable disease", "c"),  # read as written: not option C
        ("The correct answer is F: Question cannot be answered", "F"),
        ("<think>The correct answer is A: no</think>The correct answer is D: yes", "D"),
        ("I think it is C", None),
        ("The correct answer is Candida albicans", None),
        ("", None),
    ],
)
def test_parse_choice(text: str, choice: str | None) -> None:
    assert parse_choice(text) == choice


def test_scoring_clusters_repetitions_by_question_and_f_is_invalid_in_task1() -> None:
    task1, task3 = longhealth_task("longhealth_task1"), longhealth_task("longhealth_task3")
    s1, s3 = task1.load(BENCH)[0], task3.load(BENCH)[0]

    def gen(sid: str, t: str) -> Generation:
        return Generation(sid, t, 1, 1, "stop", 0.0)

    right = task1.score(s1, gen(s1.id, "The correct answer is A: x"))
    assert right.scores["accuracy"] == 1.0 and right.cluster == "patient_01/q0"
    wrong = task1.score(s1, gen(s1.id, "The correct answer is F: x"))  # F is not an option of task 1: wrong
    assert wrong.scores["accuracy"] == 0.0 and wrong.scores["format_adherence"] == 1.0
    assert task3.score(s3, gen(s3.id, "The correct answer is F: cannot")).scores["accuracy"] == 1.0


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "benchmark_v5.json"
    path.write_text(json.dumps(data))
    return path


def patient(**question_overrides: object) -> dict[str, object]:
    q: dict[str, object] = {
        "question": "Q?",
        "answer_a": "one",
        "answer_b": "two",
        "answer_c": "three",
        "answer_d": "four",
        "answer_e": "five",
        "correct": "two",
        "answer_location": {"t0": {"start": [0], "end": [1]}},
    }
    q.update(question_overrides)
    return {"texts": {"t0": "doc zero", "t1": "doc one"}, "questions": [q]}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"p1": patient(), "p2": patient(answer_location={"t9": {}})}, "names text"),
        ({"p1": patient(answer_c="")}, "field 'answer_c': missing or empty"),
        ({"p1": patient()}, "at least 2 patients"),
        ([1, 2], "expected an object of patients"),
    ],
)
def test_bad_benchmarks_name_patient_question_and_field(tmp_path: Path, data: object, message: str) -> None:
    with pytest.raises(DataError, match=message):
        longhealth_task("longhealth_task2").load(write(tmp_path, data))
