"""Wordings of a task's instruction (issue 44: does a gain survive another wording?). A task's reference wording is
its system prompt, CLUE's; each task also ships alternatives (`Task.wordings`), written to ask for the same thing and
to keep the output format its parser reads: every wording of a task names the words of that format
(`Task.wording_terms`: MedNLI's three labels, MeDiSumCode's "ICD-10", ...). Only the system prompt changes: the
few-shot turns, the input and, for LongHealth, the answer-format lines of the user turn stay as they are.

A team adds its own wordings (the prompts its clinicians type) from a TOML file, one table per task:

    [mednli]
    ward-round = "Two statements from a chart follow ... Answer ENTAILMENT, NEUTRAL or CONTRADICTION."

read and checked by `load_wordings` like any other input: a file that cannot be used is one ConfigError naming the
file, the task, the wording and what is wrong. Each wording is identified by its id and the hash of its text
(`Wording.digest`), which changes the prompts and so the generation store's key.

docs/phrasings.md reviews each of clue's wordings: what it asks for and why it keeps the format.
"""

from __future__ import annotations

import copy
import hashlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clue.errors import ConfigError

if TYPE_CHECKING:
    from clue.tasks.base import Task

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["REFERENCE", "Wording", "load_wordings", "task_wordings", "worded", "wording_problem"]

REFERENCE = "reference"  # the id of a task's own system prompt (CLUE's)
MAX_CHARS = 4000  # longer than any instruction; a file's whole document pasted in by mistake is refused
_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")


@dataclass(frozen=True)
class Wording:
    """One wording of a task's instruction: its id, its text (the system prompt) and where it comes from ("clue",
    or the user's file)."""

    id: str
    text: str
    source: str = "clue"

    @property
    def digest(self) -> str:
        """The text's hash (16 hex digits): in the results beside the id, and part of every prompt it builds."""
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()[:16]


def task_wordings(task: Task) -> tuple[Wording, ...]:
    """The task's reference wording (its system prompt) and clue's alternatives, `clue-1` ... `clue-N`, in order."""
    alternatives = (Wording(f"clue-{i}", text) for i, text in enumerate(task.wordings, start=1))
    return (Wording(REFERENCE, task.system_prompt), *alternatives)


def worded(task: Task, wording: Wording) -> Task:
    """The task asking with `wording` (a copy; the registry's instance is never changed). Everything else about
    its prompts, parsing and scoring is the task's own."""
    if wording.text == task.system_prompt:
        return task
    copied = copy.copy(task)
    setattr(copied, "system_prompt", wording.text)  # noqa: B010 - a class attribute, overridden on this copy only
    return copied


def wording_problem(task: Task, text: str) -> str | None:
    """Why `text` cannot be a wording of `task`, or None: it is empty or too long, or it does not name the words
    of the output format the task's parser reads (a wording that asks for another format measures the parser)."""
    if not text.strip():
        return "is empty"
    if len(text) > MAX_CHARS:
        return f"has {len(text)} characters (at most {MAX_CHARS}: an instruction, not a document)"
    missing = [term for term in task.wording_terms if term.casefold() not in text.casefold()]
    if missing:
        return (
            f"does not name {', '.join(repr(t) for t in missing)}: every wording of {task.name} asks for the output "
            f"format its parser reads ({', '.join(task.wording_terms)})"
        )
    return None


def load_wordings(path: Path) -> dict[str, tuple[Wording, ...]]:
    """A team's wordings from a TOML file (one table per task, id = text), each checked: task -> its wordings, in
    the file's order. Raises ConfigError naming the file, the task, the id and what is wrong."""
    from clue.tasks import get_task, task_names

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not a TOML file ({exc})") from None
    known = task_names()
    out: dict[str, tuple[Wording, ...]] = {}
    for name, table in data.items():
        if name not in known:
            raise ConfigError(f"{path}: [{name}] is no task; tasks: {', '.join(known)}")
        if not isinstance(table, dict) or not table:
            raise ConfigError(f'{path}: [{name}] must be a table of id = "wording" (at least one)')
        task = get_task(name)
        out[name] = tuple(_checked(path, task, key, value) for key, value in table.items())
        _distinct(path, task, out[name])
    return out


def _checked(path: Path, task: Task, key: str, value: Any) -> Wording:
    where = f"{path}: [{task.name}] {key}"
    if not _ID.fullmatch(key) or key == REFERENCE or key.startswith("clue-"):
        raise ConfigError(
            f"{where}: an id is 1 to 40 lower-case letters, digits, '-' or '_' (not {REFERENCE!r} or clue-*, "
            "clue's own)"
        )
    if not isinstance(value, str):
        raise ConfigError(f"{where}: a wording is text, not {type(value).__name__}")
    problem = wording_problem(task, value)
    if problem:
        raise ConfigError(f"{where}: the wording {problem}")
    return Wording(key, value, str(path))


def _distinct(path: Path, task: Task, mine: tuple[Wording, ...]) -> None:
    """A wording the same as another (the reference, clue's, or one of the file's) would be counted twice."""
    seen = {w.text.strip(): w.id for w in task_wordings(task)}
    for wording in mine:
        twin = seen.get(wording.text.strip())
        if twin is not None:
            raise ConfigError(f"{path}: [{task.name}] {wording.id}: the same text as the wording {twin!r}")
        seen[wording.text.strip()] = wording.id
