"""LongHealth: multiple-choice questions over long patient records (Level 2, accuracy, no few-shot).

Reads the benchmark JSON (`benchmark_v5.json`): `{patient_id: {"texts": {text_id: text}, "questions": [{
"question", "answer_a".."answer_e", "correct" (the text of the right option), "answer_location": {text_id: {"start":
[...], "end": [...]}}}]}}`. Three sub-tasks, registered as three tasks so each gets its own accuracy and gate:

- task 1: the answer documents only (the ones `answer_location` names); options A-E.
- task 2: the answer documents followed by 10 documents of other patients (distractors); options A-F, where F is
  "Question cannot be answered with provided documents".
- task 3: the 10 distractors only; F is correct.

Every question is asked `repetitions` times (5, as the paper's 5 shuffles / 10 alternating draws), with other
distractors and another document order each time, all from a fixed seed. The prompt is fitted to the model's
context by token count: answer documents first, then distractors; the first document that does not fit is cut,
the rest dropped; the documents kept are then shuffled. Removed tokens are recorded per sample. Token counts come
from the model's tokenizer and are cached per document, not recomputed per prompt. The gate resamples whole
questions (clusters), so repetitions do not inflate n. CLUE's script also filled task 1 with the patient's other
documents when they fit; the task definition here takes the answer documents only.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

from clue.backends.base import TokenCounter
from clue.errors import DataError
from clue.metrics.accuracy import ACCURACY, accuracy
from clue.metrics.scorers import Scorers
from clue.tasks.base import Task, strip_reasoning
from clue.types import ChatMessage, Generation, MetricSpec, Prompt, Sample, SampleScore

UNANSWERABLE = "Question cannot be answered with provided documents"
SEPARATOR = "\n\n--------------\n\n"
N_DISTRACTORS = 10
_ANSWER = re.compile(r"the correct answer is\s*:?\s*\(?([A-F])\)?(?=[\s:.)]|$)", re.IGNORECASE)

USER_TEMPLATE = """--------------BEGIN DOCUMENTS--------------

{documents}

--------------END DOCUMENTS--------------

{question}
{options}

Please answer using the following format:
1. Begin your answer with the phrase "The correct answer is".
2. State the letter of the correct option (e.g., A, B, C, D, E).
3. Follow the letter with a colon and the exact text of the option you chose.
4. Make sure your answer is a single, concise sentence.

For example, if the correct answer to a question is option C, and the text for C is 'Acute Bronchitis', your \
answer should be:
'The correct answer is C: Acute bronchitis.'"""


def parse_choice(text: str) -> str | None:
    """The letter after "The correct answer is" (first occurrence), or None."""
    match = _ANSWER.search(strip_reasoning(text))
    return match.group(1).upper() if match else None


@cache
def _benchmark(path: Path, mtime: float) -> dict[str, Any]:
    """The validated benchmark, parsed once per file version (the three sub-tasks share it)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(path, f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    if not isinstance(data, dict) or not data:
        raise DataError(path, "expected an object of patients {patient_id: {texts, questions}}")
    for pid, patient in data.items():
        where = f"patient {pid}"
        if not isinstance(patient, dict):
            raise DataError(path, "expected an object", record=where)
        texts = patient.get("texts")
        if not isinstance(texts, dict) or not texts or not all(isinstance(t, str) for t in texts.values()):
            raise DataError(path, "expected a non-empty object of text_id: text", record=where, field="texts")
        questions = patient.get("questions")
        if not isinstance(questions, list) or not questions:
            raise DataError(path, "expected a non-empty list", record=where, field="questions")
        for i, q in enumerate(questions):
            qwhere = f"{where}, question {i}"
            for field in ("question", "correct", *(f"answer_{c}" for c in "abcde")):
                if not isinstance(q.get(field), str) or not q[field].strip():
                    raise DataError(path, "missing or empty", record=qwhere, field=field)
            location = q.get("answer_location")
            if not isinstance(location, dict) or not location:
                raise DataError(
                    path, "expected an object of text_id: {start, end}", record=qwhere, field="answer_location"
                )
            unknown = [t for t in location if t not in texts]
            if unknown:
                raise DataError(
                    path,
                    f"names text(s) {unknown} that the patient does not have",
                    record=qwhere,
                    field="answer_location",
                )
            correct_letter(path, qwhere, q)
    if len(data) < 2:
        raise DataError(path, "distractor documents come from other patients: at least 2 patients are needed")
    return data


def correct_letter(path: Path, where: str, question: dict[str, Any]) -> str:
    """The option whose text is `correct` (exactly, else the only one containing it, as CLUE matched)."""
    options = {c.upper(): question[f"answer_{c}"] for c in "abcde"}
    exact = [k for k, v in options.items() if v.strip() == question["correct"].strip()]
    if len(exact) == 1:
        return exact[0]
    containing = [k for k, v in options.items() if question["correct"] in v]
    if len(containing) != 1:
        raise DataError(path, f"matches {len(containing)} options; expected exactly one", record=where, field="correct")
    return containing[0]


class LongHealthBase(Task):
    level = 2
    primary_metric = "accuracy"
    public_data = True  # the LongHealth benchmark is public (synthetic patients)
    n_shots = 0
    max_new_tokens = 50
    data_files = ("benchmark_v5.json", "LongHealth.json")
    repetitions: ClassVar[int] = 5
    with_answer_docs: ClassVar[bool] = True
    with_distractors: ClassVar[bool] = True
    letters: ClassVar[str] = "ABCDEF"
    system_prompt = (
        "You are a highly skilled and detail-oriented assistant, specifically trained to assist medical "
        "professionals in interpreting and extracting key information from medical documents. Your primary "
        "responsibility will be to analyze discharge letters from hospitals. When you receive one or more of these "
        "letters, you will be expected to carefully review the contents and accurately answer multiple-choice "
        "questions related to these documents.\n\nYour answers should be:\n1. Accurate: Make sure your answers are "
        "based on the information provided in the letters.\n2. Concise: Provide brief and direct answers without "
        "unnecessary elaboration.\n3. Contextual: Consider the context and specifics of each question to provide "
        "the most relevant information.\n\nRemember, your job is to streamline the physician's decision-making "
        "process by providing them with accurate and relevant information from discharge summaries. Efficiency and "
        "reliability are key."
    )

    def metrics(self, scorers: Scorers) -> tuple[MetricSpec, ...]:
        return (ACCURACY,)

    def find_data(self, data_dir: Path) -> Path | None:
        for folder in (data_dir / "longhealth", data_dir / "LongHealth"):
            for name in self.data_files:
                if (folder / name).is_file():
                    return folder / name
        return None

    def load(self, path: Path) -> list[Sample]:
        data = _benchmark(path, path.stat().st_mtime)
        samples = []
        for pid, patient in data.items():
            others = [t for other, p in data.items() if other != pid for t in p["texts"].values()]
            for qi, q in enumerate(patient["questions"]):
                reference = "F" if not self.with_answer_docs else correct_letter(path, f"patient {pid}", q)
                answer_docs = tuple(patient["texts"][t] for t in q["answer_location"]) if self.with_answer_docs else ()
                for rep in range(self.repetitions):
                    rng = random.Random(f"{self.name}/{pid}/{qi}/{rep}")
                    distractors = (
                        tuple(rng.sample(others, min(N_DISTRACTORS, len(others)))) if (self.with_distractors) else ()
                    )
                    fields = {
                        "question": q["question"],
                        "options": {c: q[f"answer_{c.lower()}"] for c in "ABCDE"}
                        | ({"F": UNANSWERABLE} if "F" in self.letters else {}),
                        "answer_docs": answer_docs,
                        "distractors": distractors,
                    }
                    samples.append(
                        Sample(f"{pid}/q{qi}/r{rep}", fields, reference, f"{path}:patient {pid}, question {qi}")
                    )
        return samples

    def split(self, samples: Sequence[Sample], seed: int) -> tuple[list[Sample], list[Sample]]:
        return [], list(samples)  # no few-shot; keep the file's order so repetitions stay together

    def render_user(self, sample: Sample, documents: Sequence[str] = ()) -> str:
        options = "\n".join(f"{k}: {v}" for k, v in sample.fields["options"].items())
        return USER_TEMPLATE.format(
            documents=SEPARATOR.join(documents), question=sample.fields["question"], options=options
        )

    def render_answer(self, sample: Sample) -> str:
        return f"The correct answer is {sample.reference}: {sample.fields['options'][sample.reference]}"

    def build_prompts(
        self, shots: Sequence[Sample], scored: Sequence[Sample], counter: TokenCounter | None
    ) -> list[Prompt]:
        return [self.fit_prompt(sample, counter) for sample in scored]

    def fit_prompt(self, sample: Sample, counter: TokenCounter | None) -> Prompt:
        """Select and cut documents to the model's token budget, then shuffle the kept ones (seeded per sample)."""
        docs = [*sample.fields["answer_docs"], *sample.fields["distractors"]]
        kept: list[str] = docs
        removed = 0
        if counter is not None:
            frame = (ChatMessage("system", self.system_prompt), ChatMessage("user", self.render_user(sample)))
            separator = counter.count(SEPARATOR)
            budget = counter.context - self.max_new_tokens - counter.count_prompt(frame) - 8  # 8: joins re-tokenise
            kept, used = [], 0
            for i, doc in enumerate(docs):
                length = counter.count(doc)
                cost = length + (separator if kept else 0)
                if used + cost <= budget:
                    kept.append(doc)
                    used += cost
                    continue
                room = budget - used - (separator if kept else 0)
                if room > 0:
                    cut = _cut_to_tokens(doc, room, counter)
                    kept.append(cut)
                    removed += length - counter.count(cut)
                else:
                    removed += length
                removed += sum(counter.count(d) for d in docs[i + 1 :])
                break
        random.Random(f"shuffle/{self.name}/{sample.id}").shuffle(kept)
        messages = (ChatMessage("system", self.system_prompt), ChatMessage("user", self.render_user(sample, kept)))
        return Prompt(self.name, sample.id, messages, self.max_new_tokens, None, truncated_tokens=removed)

    def score(self, sample: Sample, generation: Generation) -> SampleScore:
        choice = parse_choice(generation.text)
        if choice is not None and choice not in self.letters:
            choice = None
        cluster = sample.id.rsplit("/", 1)[0]
        return SampleScore(
            sample.id, {"accuracy": accuracy(choice, sample.reference)}, choice, choice is not None, cluster=cluster
        )


def _cut_to_tokens(text: str, tokens: int, counter: TokenCounter) -> str:
    """The longest prefix of `text` (on a word boundary) with at most `tokens` tokens, by bisection on characters."""
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if counter.count(text[:mid]) <= tokens:
            lo = mid
        else:
            hi = mid - 1
    cut = text[:lo]
    space = cut.rfind(" ")
    return cut[:space] if space > 0 else cut


class LongHealthTask1(LongHealthBase):
    name = "longhealth_task1"
    title = "LongHealth task 1"
    with_distractors = False
    letters = "ABCDE"


class LongHealthTask2(LongHealthBase):
    name = "longhealth_task2"
    title = "LongHealth task 2"


class LongHealthTask3(LongHealthBase):
    name = "longhealth_task3"
    title = "LongHealth task 3"
    with_answer_docs = False
