"""LongHealth: multiple-choice questions over long patient records (Level 2, accuracy, no few-shot).

Reads the benchmark JSON (`benchmark_v5.json`): `{patient_id: {"texts": {text_id: text}, "questions": [{
"question", "answer_a".."answer_e", "correct" (the text of the right option), "answer_location": {text_id: {"start":
[...], "end": [...]}}}]}}`. Three sub-tasks, registered as three tasks so each gets its own accuracy and gate:

- task 1: the answer documents (the ones `answer_location` names), then the patient's other documents; options A-E
  (CLUE's eval_LongHealth.py, task 1).
- task 2: the answer documents followed by 10 documents of other patients (distractors); options A-F, where F is
  "Question cannot be answered with provided documents".
- task 3: the 10 distractors only; F is correct.

Every question is asked `repetitions` times (5, as the paper's 5 shuffles / 10 alternating draws), with other
distractors and another document order each time, all from a fixed seed. The prompt is fitted by token count to
the smaller of the model's context and CLUE's budget (8,140 tokens for system prompt, instructions, question,
options and documents: `run_LongHealth8k.sh`; `--clue-longhealth-max-tokens`): answer documents first, then the
others; the first document that does not fit is cut, the rest dropped; the documents kept are then shuffled.
Removed tokens are recorded per sample. The gate resamples whole questions (clusters), so repetitions do not
inflate n.

Scoring (docs/conformance.md): `accuracy` is CLUE's rule, which measures instruction adherence as well as
content: the first "The correct answer is X:" (case as written, colon required) must name the right letter.
Two diagnostics are reported, not gated: `format_adherence` (the answer used that format) and `accuracy_lenient`
(the letter a lenient reader finds, which never mistakes the article "a" for option A).
"""

from __future__ import annotations

import copy
import random
import re
import warnings
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

from clue.errors import DataError, DataWarning, describe
from clue.metrics.accuracy import ACCURACY, accuracy
from clue.metrics.scorers import Scorers
from clue.tasks.base import Task, require_size, strip_reasoning
from clue.tasks.options import REFERENCE_MAX_TOKENS, TaskOptions
from clue.types import ChatMessage, Generation, MetricSpec, Prompt, Sample, SampleScore, TokenCounter
from clue.util import strict_json
from clue.util.strict_json import JSONProblem

UNANSWERABLE = "Question cannot be answered with provided documents"
SEPARATOR = "\n\n--------------\n\n"
N_DISTRACTORS = 10
# CLUE's answer format, as its compute_metrics reads it: case-sensitive, one word character, then a colon
_REFERENCE_ANSWER = re.compile(r"The correct answer is (\w):")
# the lenient reader: a capital letter A-F (or any case when bracketed or followed by ":" / ")") after "answer is"
# or "option"; a lower-case letter followed by a word ("is a CT scan") is an article, never an option
_LETTER = r"(?:\(([A-Fa-f])\)|([A-F])(?![\w'-])(?!\s+[a-z])|([a-f])(?=\s*[:)]))"
_LENIENT = re.compile(rf"(?:answer\s+is|answer\s*:|option|choice)\s*:?\s*{_LETTER}", re.IGNORECASE)
_LEADING = re.compile(r"^\W*\(?([A-F])\s*[:).]")

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
answer should be: \n'The correct answer is C: Acute bronchitis.'
"""


def parse_choice(text: str) -> str | None:
    """CLUE's reading (eval_LongHealth.py, compute_metrics): the character of the first "The correct answer is X:",
    as written (a lower-case "c" is not "C"), or None when the answer does not follow that format."""
    match = _REFERENCE_ANSWER.search(strip_reasoning(text))
    return match.group(1) if match else None


def parse_choice_lenient(text: str, options: dict[str, str]) -> str | None:
    """The option a reader would take the answer to mean, for the content diagnostic: the reference format first,
    then "answer is C" / "(option C)" / "choice: c)" / a leading "C:", then the one option whose text the answer
    quotes. An article ("The correct answer is a CT scan") is never read as a letter."""
    answer = strip_reasoning(text)
    strict = parse_choice(answer)
    if strict is not None and strict.upper() in options:
        return strict.upper()
    for match in _LENIENT.finditer(answer):
        letter = next(g for g in match.groups() if g).upper()
        if letter in options:
            return letter
    leading = _LEADING.match(answer)
    if leading and leading.group(1) in options:
        return leading.group(1)
    lowered = answer.lower()
    quoted = [k for k, v in options.items() if v.strip() and v.strip().lower().rstrip(".") in lowered]
    return quoted[0] if len(quoted) == 1 else None


@cache
def _benchmark(path: Path, mtime: float) -> dict[str, Any]:
    """The validated benchmark, parsed once per file version (the three sub-tasks share it). Every level is checked
    for its type: a question that is a string, a location that is a list, a duplicated patient or text key."""
    try:
        data = strict_json.parse(strict_json.read_text(path), name_keys=True)  # the benchmark is public
    except JSONProblem as exc:
        raise DataError(path, str(exc)) from None
    if not isinstance(data, dict) or not data:
        raise DataError(path, "expected an object of patients {patient_id: {texts, questions}}")
    for pid, patient in data.items():
        _check_patient(path, f"patient {pid}", patient)
    if len(data) < 2:
        raise DataError(path, "distractor documents come from other patients: at least 2 patients are needed")
    return data


def _check_patient(path: Path, where: str, patient: Any) -> None:
    if not isinstance(patient, dict):
        raise DataError(path, f"expected an object, got {describe(patient)}", record=where)
    texts = patient.get("texts")
    if not isinstance(texts, dict) or not texts or not all(isinstance(t, str) for t in texts.values()):
        raise DataError(path, "expected a non-empty object of text_id: text", record=where, field="texts")
    for text_id, text in texts.items():
        require_size(path, text, record=where, field=f"texts.{text_id}")
    questions = patient.get("questions")
    if not isinstance(questions, list) or not questions:
        raise DataError(path, "expected a non-empty list", record=where, field="questions")
    for i, q in enumerate(questions):
        qwhere = f"{where}, question {i}"
        if not isinstance(q, dict):
            raise DataError(path, f"expected an object, got {describe(q)}", record=qwhere)
        for field in ("question", "correct", *(f"answer_{c}" for c in "abcde")):
            if not isinstance(q.get(field), str) or not q[field].strip():
                raise DataError(path, "missing or empty", record=qwhere, field=field)
            require_size(path, q[field], record=qwhere, field=field)
        location = q.get("answer_location")
        if not isinstance(location, dict) or not location:
            raise DataError(path, "expected an object of text_id: {start, end}", record=qwhere, field="answer_location")
        unknown = [t for t in location if t not in texts]
        if unknown:
            raise DataError(
                path, f"names text(s) {unknown} that the patient does not have", record=qwhere, field="answer_location"
            )


def correct_letter(path: Path, where: str, question: dict[str, Any]) -> str | None:
    """The gold letter as CLUE derives it (eval_LongHealth.py, compute_metrics): the options a-e are visited in
    order and every one whose text contains `correct` overwrites the answer, so the last containing option wins.
    One deliberate exception: an option that equals `correct` exactly is taken over one that merely contains it.
    Several matches are warned about (naming the question); none returns None (CLUE's loop then crashes), and the
    question is left out with a warning. The published file is never refused for it."""
    correct = question["correct"]
    options = {c.upper(): question[f"answer_{c}"] for c in "abcde"}
    exact = [k for k, v in options.items() if v.strip() == correct.strip()]
    containing = [k for k, v in options.items() if correct in v]
    if len(exact) == 1:
        chosen = exact[0]
    elif containing:
        chosen = containing[-1]
    else:
        warnings.warn(
            DataWarning(f"{path}, {where}: no option contains the 'correct' text {correct!r}; question left out"),
            stacklevel=2,
        )
        return None
    if len(containing) > 1:
        warnings.warn(
            DataWarning(
                f"{path}, {where}: the 'correct' text {correct!r} is contained in options {', '.join(containing)}; "
                f"gold letter {chosen} ({'the exact match' if len(exact) == 1 else 'the last one, as CLUE'})"
            ),
            stacklevel=2,
        )
    return chosen


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
    own_documents: ClassVar[bool] = False  # task 1: the patient's other documents fill the context
    max_prompt_tokens: int | None = REFERENCE_MAX_TOKENS  # None: the model's context only
    protocol_version = 2  # 2: a system turn and a user turn, as CLUE's eval_LongHealth.py since the vLLM rewrite
    system_prompt = (
        "You are a highly skilled and detail-oriented assistant, specifically trained to assist medical "
        "professionals in interpreting and extracting key information from medical documents. Your primary "
        "responsibility will be to analyze discharge letters from hospitals. When you receive one or more of these "
        "letters, you will be expected to carefully review the contents and accurately answer multiple-choice "
        "questions related to these documents. \n\nYour answers should be:\n1. Accurate: Make sure your answers are "
        "based on the information provided in the letters.\n2. Concise: Provide brief and direct answers without "
        "unnecessary elaboration.\n3. Contextual: Consider the context and specifics of each question to provide "
        "the most relevant information.\n\nRemember, your job is to streamline the physician's decision-making "
        "process by providing them with accurate and relevant information from discharge summaries. Efficiency and "
        "reliability are key."
    )
    wording_terms = ("question",)
    wordings = (
        "You assist physicians by reading hospital discharge letters. Based only on the letters you are given, answer"
        " the multiple-choice question accurately and concisely.",
        "You are a careful clinical assistant. Review the patient's discharge documents and choose the option that "
        "answers the question, relying only on what the documents say.",
        "Several discharge letters of one patient follow, then a multiple-choice question. Pick the correct option "
        "using the information in the letters; be brief and precise.",
        "Help a doctor make a quick decision: extract the relevant facts from the discharge summaries provided and "
        "select the one correct answer to the multiple-choice question.",
    )

    def metrics(self, scorers: Scorers | None = None) -> tuple[MetricSpec, ...]:
        return (ACCURACY, FORMAT_ADHERENCE, ACCURACY_LENIENT)

    def configure(self, options: TaskOptions) -> LongHealthBase:
        """A copy using `longhealth_max_tokens` (0: no cap below the model's context)."""
        configured = copy.copy(self)
        configured.max_prompt_tokens = options.longhealth_max_tokens or None
        return configured

    def protocol(self) -> dict[str, Any]:
        return {**super().protocol(), "max_prompt_tokens": self.max_prompt_tokens}

    def cluster_of(self, sample: Sample) -> str:
        """The question: its repetitions (the same question, documents shuffled) share one id before the "/"."""
        return sample.id.rsplit("/", 1)[0]

    def data_folders(self) -> tuple[str, ...]:
        return ("longhealth", "LongHealth")  # one file for the three sub-tasks

    def load(self, path: Path) -> list[Sample]:
        data = _benchmark(path, path.stat().st_mtime)
        samples = []
        for pid, patient in data.items():
            others = [t for other, p in data.items() if other != pid for t in p["texts"].values()]
            for qi, q in enumerate(patient["questions"]):
                gold = correct_letter(path, f"patient {pid}, question {qi}", q)
                if gold is None:
                    continue
                reference = gold if self.with_answer_docs else "F"
                answer_docs = tuple(patient["texts"][t] for t in q["answer_location"]) if self.with_answer_docs else ()
                own = tuple(t for k, t in patient["texts"].items() if k not in q["answer_location"])
                for rep in range(self.repetitions):
                    rng = random.Random(f"{self.name}/{pid}/{qi}/{rep}")
                    if self.own_documents:
                        distractors = own
                    elif self.with_distractors:
                        distractors = tuple(rng.sample(others, min(N_DISTRACTORS, len(others))))
                    else:
                        distractors = ()
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

    @property
    def system_turn(self) -> str:
        """The system turn as CLUE's eval_LongHealth.py sends it (its sys_prompt, leading and trailing newline)."""
        return f"\n{self.system_prompt}\n"

    def render_user(self, sample: Sample, documents: Sequence[str] = ()) -> str:
        """The user turn as CLUE's eval_LongHealth.py sends it since the vLLM rewrite: its prompt_template (leading
        newline included) with the documents, the question and the options; the system prompt is its own turn."""
        options = "\n".join(f"{k}: {v}" for k, v in sample.fields["options"].items())
        body = USER_TEMPLATE.format(
            documents=SEPARATOR.join(documents), question=sample.fields["question"], options=options
        )
        return f"\n{body}"

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
        system = ChatMessage("system", self.system_turn)
        if counter is not None:
            frame = (system, ChatMessage("user", self.render_user(sample)))
            separator = counter.count(SEPARATOR)
            budget = counter.context - self.max_new_tokens - counter.count_prompt(frame) - 8  # 8: joins re-tokenise
            if self.max_prompt_tokens:  # CLUE's cap counts the text's tokens (both turns), not the chat template's
                budget = min(budget, self.max_prompt_tokens - sum(counter.count(m.content) for m in frame))
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
        messages = (system, ChatMessage("user", self.render_user(sample, kept)))
        return Prompt(self.name, sample.id, messages, self.max_new_tokens, None, truncated_tokens=removed)

    def score(self, sample: Sample, generation: Generation) -> SampleScore:
        choice = parse_choice(generation.text)
        lenient = parse_choice_lenient(generation.text, dict(sample.fields["options"]))
        cluster = self.cluster_of(sample)
        scores = {
            "accuracy": accuracy(choice, sample.reference),
            "format_adherence": float(choice is not None),
            "accuracy_lenient": accuracy(lenient, sample.reference),
        }
        return SampleScore(sample.id, scores, choice, choice is not None, cluster=cluster)


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


FORMAT_ADHERENCE = MetricSpec(
    "format_adherence",
    'share of answers in the required format "The correct answer is X:" (diagnostic, not gated)',
    kind="binary",
    gate=False,
)
ACCURACY_LENIENT = MetricSpec(
    "accuracy_lenient",
    "accuracy when the letter is read leniently, whatever the format (diagnostic, not gated): its gap to accuracy "
    "is the instruction-following failure the paper found",
    kind="binary",
    gate=False,
)


class LongHealthTask1(LongHealthBase):
    name = "longhealth_task1"
    title = "LongHealth task 1"
    with_distractors = False
    own_documents = True
    letters = "ABCDE"


class LongHealthTask2(LongHealthBase):
    name = "longhealth_task2"
    title = "LongHealth task 2"


class LongHealthTask3(LongHealthBase):
    name = "longhealth_task3"
    title = "LongHealth task 3"
    with_answer_docs = False
