"""Replay recorded outputs instead of running a model.

`path` is a JSON Lines file of `{"task": ..., "sample_id": ..., "text": ...}` records: outputs produced elsewhere
(another harness, an API run, a colleague's GPU box) are scored and gated exactly like live ones. A record may name the
instruction wording it was generated under (`"wording"`: clue's id of it, e.g. `clue-2`, or the hash of its text as the
results list it, the only name of a team's own wording; without one, the reference wording): under --clue-phrasings each
prompt is answered with the record of its own wording, and a wording without records fails its samples (outputs recorded
under one wording never stand in for another's).
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

from clue.errors import ClueError, ConfigError, DataError, DataWarning, describe
from clue.models.matrix import ModelSpec
from clue.store.fingerprint import file_sha256
from clue.store.sqlite import GenerationStore
from clue.types import ChatMessage, Generation, GenerationSettings, Prompt
from clue.util import strict_json
from clue.util.pseudonyms import hash_id
from clue.util.strict_json import JSONProblem

_FIELDS = ("task", "sample_id", "text")
_OPTIONAL = ("wording",)
REFERENCE = "reference"
BUILDER_TASKS = ("medisumqa_build",)  # prompts of `clue data build medisumqa` (clue.data.medisumqa.TASK)


class ReplayBackend:
    in_process = True  # the data-use guard: nothing is sent anywhere; outputs are read from a file

    @staticmethod
    def check(spec: ModelSpec, location: str) -> None:
        """Start-up: recorded outputs have no weights an adapter could change."""
        if spec.adapter:
            raise ConfigError(f"model {spec.name!r}: backend 'replay' scores recorded outputs; it takes no adapter")
        if Path(location).is_file():  # the whole file, now: a wrong task name or a damaged line is a usage error
            try:
                read_outputs(Path(location))
            except ClueError as exc:
                raise ConfigError(f"model {spec.name!r}: {exc}") from None

    def __init__(self, spec: ModelSpec, location: str):
        self.spec, self.path = spec, Path(location)
        if not self.path.is_file():
            raise ConfigError(f"model {spec.name!r}: replay file {self.path} not found")
        self.outputs = read_outputs(self.path)

    loads = 0
    per_sample_outputs = True  # recorded per (task, sample_id): two samples with one prompt have their own outputs
    batch_sensitive = False

    def fingerprint(self, store: GenerationStore) -> dict[str, Any]:
        return {"engine": "replay", "file": file_sha256(self.path, store)}

    def generate(
        self,
        prompts: Sequence[Prompt],
        settings: GenerationSettings,
        *,
        desc: str = "",
        on_result: Callable[[int, Generation], None] | None = None,
    ) -> list[Generation]:
        if prompts:
            self.loads += 1
        results = []
        for prompt in prompts:
            ids = prompt_wording(prompt)
            text = next(
                (t for w in ids if (t := self.outputs.get((prompt.task, prompt.sample_id, w))) is not None), None
            )
            if text is None:
                results.append(
                    Generation(
                        prompt.sample_id,
                        "",
                        0,
                        0,
                        "error",
                        0.0,
                        error=f"no recorded output in {self.path} for this sample of {prompt.task}"
                        + ("" if REFERENCE in ids else f" under the wording {ids[0]!r}"),
                    )
                )
            else:
                results.append(
                    Generation(
                        prompt.sample_id,
                        text,
                        0,
                        len(text.split()),
                        "stop",
                        0.0,
                        truncated_tokens=prompt.truncated_tokens,
                    )
                )
            if on_result:
                on_result(len(results) - 1, results[-1])
        return results

    def unmatched(self, task: str, sample_ids: Collection[str]) -> None:
        """Warn, once per task, about this task's records that match no sample of its data: an id written another
        way, or outputs of another data version; the samples without a record fail and are scored as failed."""
        stray = sorted({hash_id(task, sid) for t, sid, _ in self.outputs if t == task and sid not in sample_ids})
        if stray:
            warnings.warn(
                DataWarning(
                    f"replay file {self.path}: {len(stray)} record(s) of {task} match no sample of its data "
                    f"(hashed ids {', '.join(stray[:3])}{', ...' if len(stray) > 3 else ''}); they are not scored"
                ),
                stacklevel=2,
            )

    def token_counter(self) -> ReplayBackend:
        return self

    context = 10**9  # recorded outputs: nothing is truncated

    def count(self, text: str) -> int:
        return len(text.split())

    def count_prompt(self, messages: tuple[ChatMessage, ...]) -> int:
        return sum(self.count(m.content) for m in messages)

    def describe(self) -> dict[str, Any]:
        return {"engine": "replay", "file": str(self.path)}

    def close(self) -> None:
        self.outputs.clear()


def prompt_wording(prompt: Prompt) -> tuple[str, ...]:
    """The ids a record may name the prompt's wording by: clue's id for it (`reference`, `clue-N`) when it is one of
    the task's wordings, and the hash of its text (the only name of a team's wording here: the backend does not
    read the team's file, and the hash is what the results list beside its id)."""
    from clue.tasks import get_task, task_names
    from clue.tasks.wordings import Wording, task_wordings

    system = next((m.content for m in prompt.messages if m.role == "system"), None)
    if system is None or prompt.task not in task_names():
        return (REFERENCE,)
    text = system.strip()  # LongHealth's system turn is its wording between newlines
    named = next((w.id for w in task_wordings(get_task(prompt.task)) if w.text.strip() == text), None)
    digest = Wording("", text).digest
    return (named, digest) if named else (digest,)


def read_outputs(path: Path) -> dict[tuple[str, str, str], str]:
    """(task, sample_id, wording) -> text of a replay file. Refused as one DataError naming the file and the line:
    non-UTF-8 text, a line that is not a {task, sample_id, text} object of strings, a key given twice in one object,
    and a (task, sample_id, wording) recorded twice with different texts (which one was scored would be a guess). A
    task name that is no task's is a ConfigError listing the tasks: its records would match nothing."""
    from clue.tasks import task_names

    known = [*task_names(), *BUILDER_TASKS]
    try:
        text = strict_json.read_text(path)
    except JSONProblem as exc:
        raise DataError(path, str(exc)) from None
    outputs: dict[tuple[str, str, str], str] = {}
    first_line: dict[tuple[str, str, str], int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"line {lineno}"
        try:
            record = strict_json.parse(line, known_keys=_FIELDS + _OPTIONAL, one_line=True)
        except JSONProblem as exc:
            raise DataError(path, str(exc), record=where) from None
        if not isinstance(record, dict):
            raise DataError(path, f"expected a {{task, sample_id, text}} object, got {describe(record)}", record=where)
        for field in _FIELDS:
            value = record.get(field)
            if field == "sample_id" and isinstance(value, int) and not isinstance(value, bool):
                continue  # a numeric id (hadm_id) as another harness wrote it
            if not isinstance(value, str):
                raise DataError(path, f"expected a string, got {describe(value)}", record=where, field=field)
        task = record["task"]
        if task not in known:
            # named only when it is near a task's name (a typo, another case): anything else is described
            near = difflib.get_close_matches(task.casefold(), known, n=1, cutoff=0.75)
            named = f"{task!r} (did you mean {near[0]}?)" if near else f"({describe(task)})"
            tasks = ", ".join(task_names())
            raise ConfigError(f"replay file {path}, {where}: no task {named}; tasks: {tasks}")
        wording = record.get("wording", REFERENCE)
        if not isinstance(wording, str) or not wording.strip():
            raise DataError(
                path, f"expected a wording's id or hash, got {describe(wording)}", record=where, field="wording"
            )
        key = (task, str(record["sample_id"]), wording)
        if key in outputs and outputs[key] != record["text"]:
            raise DataError(
                path,
                f"the sample (hashed {hash_id(task, key[1])}) of {task} is recorded again with another text "
                f"(first at line {first_line[key]}): which one should be scored?",
                record=where,
            )
        outputs[key] = record["text"]
        first_line.setdefault(key, lineno)
    return outputs
