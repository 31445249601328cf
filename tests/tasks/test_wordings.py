"""Wordings of each task's instruction (clue/tasks/wordings.py, issue 44): clue ships at least four alternatives per
task, each naming the output format the task's parser reads. A wording changes the system prompt alone, never
the few-shot turns or the input. A team's own wordings come from a file checked like any other input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clue.errors import ConfigError
from clue.tasks import get_task, task_names
from clue.tasks.wordings import REFERENCE, Wording, load_wordings, task_wordings, worded, wording_problem
from tests.helpers.hostile_files import FILES, HOSTILE

BUILTIN = [name for name in task_names() if get_task(name).wordings or name in FILES]


@pytest.mark.parametrize("name", BUILTIN)
def test_every_task_ships_four_alternative_wordings_that_keep_its_output_format(name: str) -> None:
    task = get_task(name)
    wordings = task_wordings(task)
    assert wordings[0] == Wording(REFERENCE, task.system_prompt)
    assert len(wordings) >= 5 and [w.id for w in wordings[1:]] == [f"clue-{i}" for i in range(1, len(wordings))]
    assert len({w.digest for w in wordings}) == len(wordings)  # no wording counted twice
    assert task.wording_terms, f"{name} names no output format its wordings must keep"
    for wording in wordings:
        assert wording_problem(task, wording.text) is None, (name, wording.id)


@pytest.mark.parametrize("name", sorted(FILES))
def test_a_wording_changes_the_system_prompt_and_nothing_else(name: str) -> None:
    """The few-shot turns, the input and (LongHealth) the answer-format lines are the reference's, byte for byte."""
    task = get_task(name)
    shots, scored = task.split(task.load(FILES[name]), 1)
    reference = task.build_prompts(shots, scored[:3], None)
    for wording in task_wordings(task)[1:]:
        prompts = worded(task, wording).build_prompts(shots, scored[:3], None)
        for ours, theirs in zip(prompts, reference, strict=True):
            assert ours.messages[0].role == "system" and wording.text in ours.messages[0].content
            assert ours.messages[1:] == theirs.messages[1:]
            assert ours.sample_id == theirs.sample_id and ours.max_new_tokens == theirs.max_new_tokens
    assert task.system_prompt == task_wordings(task)[0].text  # the registry's task was not changed


def test_a_team_s_wordings_file_is_read_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "wordings.toml"
    path.write_text(
        '[mednli]\nward-round = "Two chart statements follow. Reply ENTAILMENT, NEUTRAL or CONTRADICTION."\n'
        '[meqsum]\nshort = "Ask the patient\'s question in one short question."\n',
        encoding="utf-8",
    )
    found = load_wordings(path)
    assert [w.id for w in found["mednli"]] == ["ward-round"] and found["mednli"][0].source == str(path)
    assert found["meqsum"][0].digest != found["mednli"][0].digest
    cases = {
        '[mednil]\na = "x"\n': r"\[mednil\] is no task",
        '[mednli]\na = "Reply ENTAILMENT or CONTRADICTION."\n': r"\[mednli\] a: the wording does not name 'NEUTRAL'",
        '[mednli]\nreference = "ENTAILMENT NEUTRAL CONTRADICTION"\n': r"\[mednli\] reference: an id is",
        "[mednli]\na = 5\n": r"\[mednli\] a: a wording is text, not int",
        "[mednli]\n": r"\[mednli\] must be a table of id",
        'mednli = "x"\n': r"\[mednli\] must be a table of id",
        '[mednli]\na = "': r"not a TOML file",
        f"[mednli]\na = {json.dumps(get_task('mednli').system_prompt)}\n": r"the same text as the wording 'reference'",
    }
    for text, message in cases.items():
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError, match=message) as raised:
            load_wordings(path)
        assert str(raised.value).startswith(str(path)), raised.value
    path.write_bytes(b'[mednli]\na = "\xff"\n')
    with pytest.raises(ConfigError, match="not a TOML file"):
        load_wordings(path)
    with pytest.raises(ConfigError, match="cannot be read"):
        load_wordings(tmp_path / "missing.toml")


def _toml(value: Any) -> str:
    return (
        json.dumps(value) if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else repr(value)
    )


@HOSTILE
@given(
    tables=st.dictionaries(
        st.sampled_from(["mednli", "meqsum", "medisumcode", "longhealth_task2", "mednil", "x"]),
        st.dictionaries(
            st.one_of(
                st.sampled_from(["a", "b-2", "reference", "clue-1", "UPPER"]),
                st.from_regex(r"[a-z]{1,5}", fullmatch=True),
            ),
            st.one_of(
                st.text(max_size=60),
                st.sampled_from(["ENTAILMENT NEUTRAL CONTRADICTION", "a question", "ICD-10 codes", "the question?"]),
                st.integers(),
                st.booleans(),
            ),
            max_size=3,
        ),
        max_size=3,
    )
)
def test_any_wordings_file_is_read_as_written_or_refused_naming_the_file(
    tables: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "wordings.toml"
    path.write_text(
        "".join(
            f"[{name}]\n" + "".join(f'"{k}" = {_toml(v)}\n' for k, v in table.items()) for name, table in tables.items()
        ),
        encoding="utf-8",
    )
    try:
        found = load_wordings(path)
    except ConfigError as exc:
        assert str(exc).startswith(f"{path}: "), str(exc)
        return
    assert set(found) == set(tables)
    for name, wordings in found.items():
        task = get_task(name)
        assert [w.id for w in wordings] == list(tables[name])
        for wording in wordings:
            assert wording.text == tables[name][wording.id] and wording_problem(task, wording.text) is None


def test_every_wording_is_reviewed_in_the_docs_under_its_hash() -> None:
    """docs/phrasings.md reviews each of clue's wordings: a wording changed in the code without its review changes
    its hash, which the page then lacks."""
    from tests.helpers import REPO

    page = (REPO / "docs/phrasings.md").read_text(encoding="utf-8")
    for name in BUILTIN:
        for wording in task_wordings(get_task(name)):
            assert f"| `{wording.id}` | `{wording.digest}` |" in page, (name, wording.id)
