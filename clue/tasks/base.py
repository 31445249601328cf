"""What every task is made of: a loader for the published format, a prompt builder, an output parser, metrics.

A task is a dataset / prompt / scorer triple in the spirit of inspect_ai; the plugin does everything else
(generation, pairing with the base model, the gate, the reports).
"""

from __future__ import annotations

import random
import re
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from clue.errors import DataError, describe
from clue.types import ChatMessage, Generation, MetricSpec, Prompt, Sample, SampleScore
from clue.util import strict_json
from clue.util.pseudonyms import hash_id
from clue.util.strict_json import JSONProblem

if TYPE_CHECKING:
    from clue.metrics.scorers import Scorers
    from clue.tasks.options import TaskOptions
    from clue.types import TokenCounter

__all__ = [
    "Task",
    "check_unique_ids",
    "comparable",
    "read_json_records",
    "record_id",
    "refuse_repeated_columns",
    "require_size",
    "require_str",
    "split_reasoning",
    "strip_reasoning",
]

_REASONING_OPEN = re.compile(r"<(?:think|thinking|reasoning)>", re.IGNORECASE)
_REASONING_CLOSE = re.compile(r"</(?:think|thinking|reasoning)>", re.IGNORECASE)


def split_reasoning(text: str) -> tuple[str, str | None]:
    """The answer part of an output and what was done to it: the one rule for every task (docs/conformance.md).

    A reasoning model's answer follows its closing tag (`</think>`, `</thinking>`, `</reasoning>`), whether the
    model wrote the opening tag or its chat template did (then the output has only the closing one): everything up
    to the last closing tag is dropped ("stripped"). An output with an opening tag and no closing one stopped while
    reasoning: it is kept whole ("unclosed") and scored as written, as CLUE scores every output. None: no block."""
    closes = list(_REASONING_CLOSE.finditer(text))
    if closes:
        return text[closes[-1].end() :], "stripped"
    if _REASONING_OPEN.search(text):
        return text, "unclosed"
    return text, None


def comparable(text: str) -> str:
    """`text` with its spacing, case and punctuation undone (its letters and digits only): two answers are the same
    answer when these are equal (a re-export that changed commas or hyphens does not make a test item unseen)."""
    return "".join(c for c in text.casefold() if c.isalnum())


def strip_reasoning(text: str) -> str:
    """The answer part of an output (see split_reasoning)."""
    return split_reasoning(text)[0]


class Task(ABC):
    """A CLUE task. Subclasses set the class attributes and implement load / render / score."""

    name: ClassVar[str]
    title: ClassVar[str]
    level: ClassVar[int]
    n_shots: ClassVar[int]
    max_new_tokens: ClassVar[int]
    data_files: ClassVar[tuple[str, ...]]  # file names looked for in <data_dir>/<task name>/
    system_prompt: ClassVar[str]
    primary_metric: ClassVar[str]  # the one number per task in the summary table
    public_data: ClassVar[bool] = False  # True: sample text may appear in reports without --clue-report-samples
    # bump when this task's prompts, output parsing or scoring change: a stored baseline saved under another
    # version measured something else and is refused (clue/baseline.py)
    protocol_version: ClassVar[int] = 1
    # alternative wordings of `system_prompt` (clue/tasks/wordings.py; reviewed in docs/phrasings.md), and the
    # words of the output format the parser reads that every wording must name
    wordings: ClassVar[tuple[str, ...]] = ()
    wording_terms: ClassVar[tuple[str, ...]] = ()

    def configure(self, options: TaskOptions) -> Task:
        """This task with the run's task options (`settings.tasks`, clue/tasks/options.py) applied: a copy when
        any applies; the registry's instance is shared by every session of the process and never changed."""
        return self

    def cluster_of(self, sample: Sample) -> str | None:
        """The cluster a sample belongs to (samples asking one question several times move together in the gate
        and the sequential order), or None."""
        return None

    def protocol(self) -> dict[str, Any]:
        """What defines this task's measurement besides its data, decoding and metrics (a baseline must match)."""
        return {"version": self.protocol_version, "n_shots": self.n_shots, "max_new_tokens": self.max_new_tokens}

    # whether an output equal to a few-shot answer says anything: not where every answer is one of a few labels
    detects_shot_copies: ClassVar[bool] = True

    def copies_shot(self, shots: Sequence[Sample], generation: Generation, score: SampleScore) -> bool:
        """Whether the output repeats a few-shot example's answer (whitespace and case aside): real small models do
        this constantly, and a copied answer can score well while measuring nothing about the sample."""
        text = comparable(strip_reasoning(generation.text))
        return bool(text) and any(self.answer_key(s) == text for s in shots)

    def answer_key(self, sample: Sample) -> str:
        """The sample's reference answer as answers are compared for being the same one (`comparable`): a few-shot
        copy, a test item handed over again as a contamination reference item."""
        return comparable(self.render_answer(sample))

    def shot_balance(self, shots: Sequence[Sample]) -> dict[str, int] | None:
        """For tasks with a few labels: how many few-shot examples carry each (recorded in the provenance)."""
        return None

    def detail(self, sample: Sample, score: SampleScore) -> dict[str, Any]:
        """Structured, text-free facts about one answer for the report (parsed label, missing codes, ...)."""
        return {"parsed": score.parsed, "gold": sample.reference} if isinstance(score.parsed, str | None) else {}

    @abstractmethod
    def metrics(self, scorers: Scorers | None = None) -> tuple[MetricSpec, ...]:
        """Every metric the task reports. With a run's `scorers`: as that run scores them (fingerprinted with its
        metric models; UMLS only where a linker is configured). Without: the definitions alone, no metric model
        touched (listing metrics, validating per-metric options)."""

    @abstractmethod
    def load(self, path: Path) -> list[Sample]:
        """Read the published file; raise DataError naming file, record and field on anything malformed."""

    @abstractmethod
    def render_user(self, sample: Sample) -> str: ...

    @abstractmethod
    def render_answer(self, sample: Sample) -> str:
        """The assistant turn of a few-shot example: the gold answer in the format the model should copy."""

    @abstractmethod
    def score(self, sample: Sample, generation: Generation) -> SampleScore: ...

    def score_all(
        self, samples: Sequence[Sample], generations: Sequence[Generation], scorers: Scorers
    ) -> list[SampleScore]:
        """Scores for all samples at once: tasks with model-based metrics (BERTScore) override this to batch."""
        return [self.score(s, g) for s, g in zip(samples, generations, strict=True)]

    def build_prompts(
        self, shots: Sequence[Sample], scored: Sequence[Sample], counter: TokenCounter | None
    ) -> list[Prompt]:
        """One prompt per scored sample; `counter` lets a task budget its documents to the model's context."""
        return [self.build_prompt(sample, shots) for sample in scored]

    def truncatable(self, sample: Sample) -> str | None:
        """The part of the user turn that may be shortened to fit the context (the document), if any."""
        return None

    def data_folders(self) -> tuple[str, ...]:
        """The folder names under the data folder that may hold the task's file: its name and its published one."""
        return tuple(dict.fromkeys((self.name, self.title.replace(" ", ""))))

    def find_data(self, data_dir: Path) -> Path | None:
        """The task's file in <data_dir>/<name>/ or <data_dir>/<title>/ (the published folder names, e.g. MeQSum).
        A file that resolves outside `data_dir` (a symlink) is refused: a data folder never hands out files
        elsewhere; DataError says how to name such a file explicitly."""
        for folder in (data_dir / name for name in self.data_folders()):
            for name in self.data_files:
                path = folder / name
                if not path.is_file():
                    continue
                try:
                    path.resolve().relative_to(data_dir.resolve())
                except ValueError:
                    raise DataError(
                        path,
                        f"points outside the data folder {data_dir} (resolves to {path.resolve()}; a symlink?); "
                        f"name the file explicitly with --clue-data {self.name}=FILE if that is intended",
                    ) from None
                return path
        return None

    def split(self, samples: Sequence[Sample], seed: int) -> tuple[list[Sample], list[Sample]]:
        """Shuffle with a fixed seed and take the first `n_shots` as few-shot examples, as CLUE does.

        `random.Random(1)` reproduces CLUE's `random.seed(1); random.shuffle(data)` exactly. The few-shot
        examples are excluded from the scored set.
        """
        shuffled = list(samples)
        random.Random(seed).shuffle(shuffled)
        if len(shuffled) <= self.n_shots:
            raise DataError(
                "<data>",
                f"{self.name} needs more than {self.n_shots} records ({self.n_shots} few-shot + 1 scored), "
                f"got {len(shuffled)}",
            )
        return shuffled[: self.n_shots], shuffled[self.n_shots :]

    def build_prompt(self, sample: Sample, shots: Sequence[Sample]) -> Prompt:
        messages = [ChatMessage("system", self.system_prompt)]
        for shot in shots:
            messages.append(ChatMessage("user", self.render_user(shot)))
            messages.append(ChatMessage("assistant", self.render_answer(shot)))
        messages.append(ChatMessage("user", self.render_user(sample)))
        return Prompt(
            task=self.name,
            sample_id=sample.id,
            messages=tuple(messages),
            max_new_tokens=self.max_new_tokens,
            truncatable=self.truncatable(sample),
        )


def read_json_records(path: Path, fields: Collection[str] = ()) -> Iterator[tuple[str, Any]]:
    """Records of a JSON array file or a JSON Lines file, each with its location ("line 7" / "index 3"). Non-UTF-8
    text, a key given twice in one object, NaN and hostile nesting are a DataError naming the file and the record;
    `fields` are the schema's field names, which a message may name."""
    try:
        text = strict_json.read_text(path)
    except JSONProblem as exc:
        raise DataError(path, str(exc)) from None
    if text.lstrip().startswith("["):
        try:
            records = strict_json.parse(text, known_keys=fields)
        except JSONProblem as exc:
            raise DataError(path, str(exc)) from None
        if not isinstance(records, list):
            raise DataError(path, f"expected a JSON array of records, got {describe(records)}")
        for index, record in enumerate(records):
            yield f"index {index}", record
        return
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = strict_json.parse(line, known_keys=fields, one_line=True)
        except JSONProblem as exc:
            raise DataError(path, str(exc), record=f"line {lineno}") from None
        yield f"line {lineno}", record


def require_str(path: Path, where: str, record: Any, field: str, *, allow_empty: bool = False) -> str:
    """A record's text field: present, a string, not empty, not oversized; described, never echoed, when not."""
    if not isinstance(record, dict):
        raise DataError(path, f"expected a JSON object, got {describe(record)}", record=where)
    if field not in record:
        raise DataError(path, "missing", record=where, field=field)
    value = record[field]
    if not isinstance(value, str):
        raise DataError(path, f"expected a string, got {describe(value)}", record=where, field=field)
    if not allow_empty and not value.strip():
        raise DataError(path, "empty", record=where, field=field)
    return require_size(path, value, record=where, field=field)


def require_size(path: Path, value: str, *, record: str, field: str) -> str:
    """A text field within the size a record's field may have (strict_json.MAX_FIELD_CHARS), or a DataError giving
    its size: refused at load, before anything is tokenised."""
    if len(value) > strict_json.MAX_FIELD_CHARS:
        limit = strict_json.MAX_FIELD_CHARS
        raise DataError(
            path,
            f"a string of {len(value):,} characters, over the limit of {limit:,} for one field",
            record=record,
            field=field,
        )
    return value


def refuse_repeated_columns(path: Path, header: Sequence[str], columns: Sequence[str]) -> None:
    """A header that names one of `columns` twice is refused: which copy is meant would be a guess."""
    twice = [c for c in columns if header.count(c) > 1]
    if twice:
        raise DataError(path, f"the header names column(s) {', '.join(twice)} twice (which copy is meant?)")


def record_id(path: Path, where: str, record: dict[str, Any], keys: Sequence[str]) -> str | None:
    """The record's id from the first of `keys` it sets: a string or an integer (a hadm_id); another type is a
    DataError (str() of an object would make an id nobody wrote). None: no key is set."""
    for key in keys:
        value = record.get(key)
        if value is None or value == "":
            continue
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise DataError(path, f"expected a string or an integer, got {describe(value)}", record=where, field=key)
        return str(value)
    return None


def check_unique_ids(path: Path, task: str, samples: Sequence[Sample]) -> None:
    """A duplicated id is refused, named by its pseudonym and both records' places: the raw id may be an identifier
    or, for MeDiSumQA, hold the patient's question."""
    seen: dict[str, str] = {}
    for s in samples:
        where = s.source.removeprefix(f"{path}:")
        if s.id in seen:
            raise DataError(
                path, f"duplicate sample id (hashed {hash_id(task, s.id)}; first at {seen[s.id]})", record=where
            )
        seen[s.id] = where
