"""MedNLI and MeDiSumCode: loaders on the shipped fixtures and on broken files, prompts, parsers, scoring."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from clue.errors import DataError
from clue.metrics.scorers import Scorers
from clue.tasks import get_task
from clue.tasks.mednli import parse_label
from clue.types import Generation, TaskResult
from tests.helpers import FIXTURE_DATA


def gen(sample_id: str, text: str) -> Generation:
    return Generation(sample_id, text, 10, 5, "stop", 0.0)


# -- MedNLI ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("ENTAILMENT", "ENTAILMENT"),
        ("  neutral.\n", "NEUTRAL"),
        ("The answer is: Contradiction", "CONTRADICTION"),
        ("ENTAILMENT. ENTAILMENT.", "ENTAILMENT"),
        ("<think>could be NEUTRAL or CONTRADICTION</think> ENTAILMENT", "ENTAILMENT"),
        ("ENTAILMENT or NEUTRAL", None),
        ("ENTAILMENT, not CONTRADICTION", None),  # CLUE scored this right for either gold label
        ("", None),
        ("NONENTAILMENT", "ENTAILMENT"),  # a substring, as CLUE's compute_metrics finds labels
        ("I cannot tell", None),
    ],
)
def test_mednli_parser_accepts_exactly_one_label(text: str, label: str | None) -> None:
    assert parse_label(text) == label


def test_mednli_loads_the_fixture() -> None:
    task = get_task("mednli")
    samples = task.load(FIXTURE_DATA / "mednli" / "mli_test_v1.jsonl")
    assert len(samples) == 33
    assert {s.reference for s in samples} == {"ENTAILMENT", "NEUTRAL", "CONTRADICTION"}
    assert len({s.id for s in samples}) == 33


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 2: invalid JSON"),
        (json.dumps({"sentence1": "a", "gold_label": "neutral"}), "line 2, field 'sentence2': missing"),
        (
            json.dumps({"sentence1": "a", "sentence2": "b", "gold_label": "maybe"}),
            "line 2, field 'gold_label'",
        ),
        (
            json.dumps({"sentence1": "a", "sentence2": 3, "gold_label": "neutral"}),
            "expected a string, got an integer",
        ),
        (
            json.dumps({"sentence1": " ", "sentence2": "b", "gold_label": "neutral"}),
            "field 'sentence1': empty",
        ),
        (json.dumps(["a", "b"]), "line 2: expected a JSON object"),
    ],
)
def test_mednli_bad_records_name_file_record_and_field(tmp_path: Path, line: str, message: str) -> None:
    good = json.dumps({"sentence1": "a", "sentence2": "b", "gold_label": "neutral", "pairID": "p1"})
    path = tmp_path / "mli_test_v1.jsonl"
    path.write_text(good + "\n" + line + "\n")
    with pytest.raises(DataError, match=message) as info:
        get_task("mednli").load(path)
    assert str(path) in str(info.value)


def test_duplicate_ids_are_rejected(tmp_path: Path) -> None:
    rec = json.dumps({"sentence1": "a", "sentence2": "b", "gold_label": "neutral", "pairID": "same"})
    path = tmp_path / "d.jsonl"
    path.write_text(rec + "\n" + rec + "\n")
    with pytest.raises(
        DataError, match=r"record line 2: duplicate sample id \(hashed [0-9a-f]{16}; first at line 1\)"
    ) as info:
        get_task("mednli").load(path)
    assert "same" not in str(info.value)  # the raw id is a credentialed identifier


def test_split_reproduces_clue_and_excludes_few_shot_examples() -> None:
    task = get_task("mednli")
    samples = task.load(FIXTURE_DATA / "mednli" / "mli_test_v1.jsonl")
    shots, scored = task.split(samples, seed=1)
    expected = list(samples)
    random.seed(1)  # what CLUE's eval_mednli.py does
    random.shuffle(expected)
    assert shots == expected[:3]
    assert scored == expected[3:]
    assert not {s.id for s in shots} & {s.id for s in scored}
    assert task.split(samples, seed=2)[0] != shots


def test_mednli_prompt_is_system_then_three_shots_then_question() -> None:
    task = get_task("mednli")
    shots, scored = task.split(task.load(FIXTURE_DATA / "mednli" / "mli_test_v1.jsonl"), seed=1)
    prompt = task.build_prompt(scored[0], shots)
    roles = [m.role for m in prompt.messages]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user", "assistant", "user"]
    # CLUE's assistant_response_template "{gold_label}": the label as the file writes it (lower case in MedNLI)
    assert prompt.messages[2].content == shots[0].fields["gold_label"] == shots[0].reference.lower()
    assert prompt.messages[-1].content == (
        f"\nSENTENCE_1: {scored[0].fields['sentence1']}\nSENTENCE_2: {scored[0].fields['sentence2']}\n"
    )
    assert prompt.max_new_tokens == 20 and prompt.truncatable is None


def test_too_few_records_for_few_shot_is_a_data_error() -> None:
    task = get_task("mednli")
    samples = task.load(FIXTURE_DATA / "mednli" / "mli_test_v1.jsonl")[:3]
    with pytest.raises(DataError, match="needs more than 3 records"):
        task.split(samples, seed=1)


def test_mean_counts_every_sample_once() -> None:
    """CLUE's update_results appended the first sample twice: [1, 0, 0] averaged to 0.5 instead of 1/3."""
    task = get_task("mednli")
    samples = task.load(FIXTURE_DATA / "mednli" / "mli_test_v1.jsonl")[:3]
    answers = [samples[0].reference, "nonsense", "nonsense"]
    scores = tuple(task.score(s, gen(s.id, a)) for s, a in zip(samples, answers, strict=True))
    result = TaskResult("mednli", "m", task.metrics(Scorers()), scores, (), {}, {})
    assert result.aggregate("accuracy") == pytest.approx(1 / 3)


# -- MeDiSumCode ----------------------------------------------------------------------------------------------


def test_medisumcode_loads_json_array_and_json_lines(tmp_path: Path) -> None:
    task = get_task("medisumcode")
    array = task.load(FIXTURE_DATA / "medisumcode" / "MeDiSumCode.json")
    assert len(array) == 24
    assert array[0].id == "20000101"
    assert array[0].reference == ("I214", "I10", "E785", "E119", "Z7984")
    lines = tmp_path / "MeDiSumCode.jsonl"  # what CLUE's generate_code_dataset.py writes
    records = json.loads((FIXTURE_DATA / "medisumcode" / "MeDiSumCode.json").read_text())
    lines.write_text("".join(json.dumps(r) + "\n" for r in records))
    from_lines = task.load(lines)
    assert [(s.id, s.fields, s.reference) for s in from_lines] == [(s.id, s.fields, s.reference) for s in array]
    assert from_lines[2].source == f"{lines}:line 3"


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"hadm_id": "1", "icd_codes": []}, "field 'text': missing"),
        ({"hadm_id": "1", "text": "note"}, "field 'icd_codes': missing or not a list"),
        ({"hadm_id": "1", "text": "note", "icd_codes": [{"description": "x"}]}, r"field 'icd_codes\[0\]'"),
        ({"hadm_id": "1", "text": "note", "icd_codes": ["I10"]}, r"field 'icd_codes\[0\]'"),
    ],
)
def test_medisumcode_bad_records(tmp_path: Path, record: dict[str, object], message: str) -> None:
    path = tmp_path / "MeDiSumCode.json"
    path.write_text(json.dumps([{"hadm_id": "0", "text": "ok", "icd_codes": []}, record]))
    with pytest.raises(DataError, match=f"index 1, {message}"):
        get_task("medisumcode").load(path)


def test_medisumcode_invalid_json_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "MeDiSumCode.json"
    path.write_text('[\n {"text": "a",\n  "icd_codes": [}\n]')
    with pytest.raises(DataError, match="invalid JSON: Expecting value at line 3, column 17"):
        get_task("medisumcode").load(path)


def test_an_unterminated_string_is_reported_with_its_position(tmp_path: Path) -> None:
    """JSON Lines: the message used to end in "Unterminated string starting at", as if cut off."""
    path = tmp_path / "mli_test_v1.jsonl"
    path.write_text('{"sentence1": "a", "sentence2": "b", "gold_label": "neutral"}\n{"sentence1": "a\n')
    with pytest.raises(DataError, match=r"line 2: invalid JSON: Unterminated string starting at column 15$"):
        get_task("mednli").load(path)


def test_medisumcode_prompt_and_scoring() -> None:
    task = get_task("medisumcode")
    shots, scored = task.split(task.load(FIXTURE_DATA / "medisumcode" / "MeDiSumCode.json"), seed=1)
    prompt = task.build_prompt(scored[0], shots)
    assert [m.role for m in prompt.messages] == ["system", "user", "assistant", "user"]
    assert prompt.messages[2].content == "ICD-10 Codes: " + ", ".join(shots[0].reference)
    assert prompt.truncatable == scored[0].fields["text"]
    assert prompt.truncatable is not None and prompt.truncatable in prompt.messages[-1].content
    sample = scored[0]
    gold = list(sample.reference)
    perfect = task.score(sample, gen(sample.id, "ICD-10 Codes: " + ", ".join(gold)))
    assert perfect.scores["icd_exact_f1"] == 1.0 and perfect.scores["icd_valid_share"] == 1.0
    empty = task.score(sample, gen(sample.id, ""))
    assert empty.scores["icd_exact_f1"] == 0.0 and not empty.parse_ok
    half = task.score(sample, gen(sample.id, f"{gold[0]}, Q99.99"))
    assert half.scores["icd_exact_precision"] == 0.5
    assert half.scores["icd_valid_share"] == 0.5


def test_fixture_codes_are_all_valid_icd10cm() -> None:
    from clue.metrics.icd10 import is_valid_code

    for sample in get_task("medisumcode").load(FIXTURE_DATA / "medisumcode" / "MeDiSumCode.json"):
        assert all(is_valid_code(c) for c in sample.reference), sample.id
