"""MeQSum (on the real published file when the workspace has it), Problem Summary and MeDiSumQA: loaders, bad
input, prompts and batch scoring."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

from clue.errors import DataError
from clue.metrics.bertscore import BertScoreConfig
from clue.metrics.scorers import Scorers
from clue.models.tiny import bertscore_stand_in
from clue.tasks import get_task
from clue.tasks.problem_summary import clean_summary
from clue.types import Generation
from tests.helpers import FIXTURE_DATA, MEQSUM, REPO, needs_meqsum


def write_xlsx(path: Path, rows: list[list[object]]) -> Path:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


@needs_meqsum
def test_meqsum_reads_the_published_file_as_it_is() -> None:
    task = get_task("meqsum")
    samples = task.load(MEQSUM)
    assert len(samples) == 1000
    assert samples[0].id == "1-131188152.xml.txt"
    assert samples[0].reference == "Who manufactures cetirizine?"
    assert samples[0].fields["CHQ"].startswith("SUBJECT: who and where to get cetirizine")
    shots, scored = task.split(samples, seed=1)
    expected = list(samples)
    random.seed(1)  # CLUE: pandas rows, random.seed(1), shuffle, 3 few-shot examples
    random.shuffle(expected)
    assert [s.id for s in shots] == [s.id for s in expected[:3]] and len(scored) == 997
    prompt = task.build_prompt(scored[0], shots)
    assert [m.role for m in prompt.messages] == ["system"] + ["user", "assistant"] * 3 + ["user"]
    assert prompt.messages[-1].content.startswith("--------------PATIENT INQUIRY--------------\n")


def test_meqsum_is_found_under_its_published_folder_name() -> None:
    if MEQSUM.is_file():
        assert get_task("meqsum").find_data(MEQSUM.parents[1]) == MEQSUM


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([["File", "Question", "Summary"], ["a", "q", "s"]], "no column"),
        ([["File", "CHQ", "Summary"], ["a", "question", None]], "row 2, field 'Summary': empty"),
        (
            [["File", "CHQ", "Summary"], ["a", "q1", "s1"], ["a", "q2", "s2"]],
            r"row 3: duplicate sample id \(hashed [0-9a-f]{16}; first at row 2\)",
        ),
    ],
)
def test_meqsum_bad_workbooks(tmp_path: Path, rows: list[list[object]], message: str) -> None:
    path = write_xlsx(tmp_path / "m.xlsx", rows)
    with pytest.raises(DataError, match=message):
        get_task("meqsum").load(path)


def test_meqsum_not_a_workbook(tmp_path: Path) -> None:
    path = tmp_path / "m.xlsx"
    path.write_text("File,CHQ,Summary\n")
    with pytest.raises(DataError, match=r"not a readable \.xlsx"):
        get_task("meqsum").load(path)


def test_problem_summary_separators_become_commas() -> None:
    """CLUE replaced ';' by ', ' but its attempt to drop a trailing ';' was never assigned."""
    assert clean_summary("Sepsis;AKI;") == "Sepsis, AKI"
    assert clean_summary(" Pneumonia ; COPD exacerbation ") == "Pneumonia ,  COPD exacerbation"


def test_problem_summary_loads_fixture_and_accepts_release_column_name(tmp_path: Path) -> None:
    task = get_task("problem_summary")
    samples = task.load(FIXTURE_DATA / "problem_summary" / "BioNLP2023-1A-Test.csv")
    assert len(samples) == 24 and samples[0].id == "100200.txt"
    # CLUE's replace(";", ", ") keeps the space that followed "; " (ROUGE's tokenizer ignores it)
    assert (
        samples[0].reference
        == "Acute on chronic systolic heart failure,  medication nonadherence,  acute kidney injury"
    )
    path = tmp_path / "release.csv"
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([["File ID", "Subjective Sections", "Assessment", "Summary"], ["1", "S", "A", "x;y"]])
    (sample,) = task.load(path)
    assert sample.fields["Subjectives"] == "S" and sample.reference == "x, y"


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([["Subjectives", "Summary"], ["s", "x"]], "no column"),
        ([["Subjectives", "Assessment", "Summary"], ["s", "", "x"]], "row 2, field 'Assessment': empty"),
        ([["Subjectives", "Assessment", "Summary"], ["s", "a", "x", "extra"]], "row 2: more fields"),
    ],
)
def test_problem_summary_bad_csv(tmp_path: Path, rows: list[list[str]], message: str) -> None:
    path = tmp_path / "ps.csv"
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    with pytest.raises(DataError, match=message):
        get_task("problem_summary").load(path)


def test_medisumqa_loads_and_validates(tmp_path: Path) -> None:
    task = get_task("medisumqa")
    samples = task.load(FIXTURE_DATA / "medisumqa" / "MeDiSumQA.json")
    assert len(samples) == 24 and samples[0].reference.startswith("You had a heart attack")
    bad = tmp_path / "q.json"
    bad.write_text(json.dumps([{"discharge_summary": "x", "Question": "q"}]))
    with pytest.raises(DataError, match="index 0, field 'Answer': missing"):
        task.load(bad)


@pytest.fixture(scope="module")
def scorers(tmp_path_factory: pytest.TempPathFactory) -> Scorers:
    from clue.metrics.umls import ScispacyConfig

    return Scorers(
        rouge_stemmer=True,
        bertscore_config=BertScoreConfig("tiny-bert"),
        umls_config=ScispacyConfig("ruler", str(REPO / "fixtures/umls/kb.jsonl")),
        cache_dir=(cache := tmp_path_factory.mktemp("cache")),
        bertscore_build=bertscore_stand_in("tiny-bert", cache),
    )


def test_text_task_scores_every_declared_metric_and_loads_models_once(scorers: Scorers) -> None:
    task = get_task("problem_summary")
    samples = task.load(FIXTURE_DATA / "problem_summary" / "BioNLP2023-1A-Test.csv")[:4]
    outputs = [samples[0].reference, "", "<think>hmm</think>Pneumonia; sepsis", "completely unrelated words"]
    gens = [Generation(s.id, o, 1, 1, "stop", 0.0) for s, o in zip(samples, outputs, strict=True)]
    scores = task.score_all(samples, gens, scorers)
    declared = {m.name for m in task.metrics(scorers)}
    assert all(set(s.scores) == declared for s in scores)
    assert scores[0].scores["rougeL"] == 1.0 and scores[0].scores["umls_f1"] == 1.0
    assert scores[0].scores["bertscore_f1"] == pytest.approx(1.0, abs=1e-5)
    assert scores[1].scores["bertscore_f1"] == 0.0 and not scores[1].parse_ok
    assert "hmm" not in str(scores[2].parsed)
    assert all(0.0 <= v <= 1.0 + 1e-6 for s in scores for v in s.scores.values())
    task.score_all(samples, gens, scorers)
    assert scorers.loads == {"bertscore": 1, "umls": 1}


def test_meqsum_has_no_umls_metric(scorers: Scorers) -> None:
    names = {m.name for m in get_task("meqsum").metrics(scorers)}
    assert names == {"rouge1", "rouge2", "rougeL", "bertscore_f1", "bertscore_precision", "bertscore_recall"}


def test_umls_off_drops_the_metric() -> None:
    assert "umls_f1" not in {m.name for m in get_task("medisumqa").metrics(Scorers(umls_config=None))}


def test_metric_memo_serves_a_rerun_without_loading_metric_models(tmp_path: Path) -> None:
    """BERTScore pairs and UMLS concepts are memoised in the store: a new session with the same metric models
    scores identically without loading them; a changed BERTScore layer recomputes."""
    from clue.metrics.umls import ScispacyConfig
    from clue.store.sqlite import GenerationStore

    store = GenerationStore(tmp_path / "store.sqlite3")

    def fresh(layers: int | None = None) -> Scorers:
        return Scorers(
            bertscore_config=BertScoreConfig("tiny-bert", layers),
            umls_config=ScispacyConfig("ruler", str(REPO / "fixtures/umls/kb.jsonl")),
            cache_dir=tmp_path / "cache",
            store=store,
            bertscore_build=bertscore_stand_in("tiny-bert", tmp_path / "cache"),
        )

    task = get_task("medisumqa")
    samples = task.load(FIXTURE_DATA / "medisumqa" / "MeDiSumQA.json")[:5]
    gens = [Generation(s.id, f"{s.reference} and more words {i}", 1, 1, "stop", 0.0) for i, s in enumerate(samples)]
    first = fresh()
    expected = task.score_all(samples, gens, first)
    assert first.loads == {"bertscore": 1, "umls": 1} and first.memo_hits == 0
    task.score_all(samples, gens, first)  # once the models are loaded, the memo keys must not change
    assert first.memo_hits == 5 + 10
    second = fresh()
    again = task.score_all(samples, gens, second)
    assert second.loads == {} and second.memo_hits == 5 + 10  # 5 BERTScore pairs, 10 texts' concepts
    assert [s.scores for s in again] == [s.scores for s in expected]
    other_layer = fresh(layers=1)
    task.score_all(samples, gens, other_layer)
    assert other_layer.loads == {"bertscore": 1} and other_layer.memo_hits == 10


def test_a_bertscore_layer_past_the_model_s_last_is_refused_naming_the_option(tmp_path: Path) -> None:
    """--clue-bertscore-layers 999 was bert-score's bare AssertionError when the metric model loaded."""
    from clue.errors import ConfigError
    from clue.metrics.bertscore import BertScorer
    from clue.models.tiny import build_tiny_bert

    model = build_tiny_bert(tmp_path / "tiny-bert")
    with pytest.raises(ConfigError, match=r"--clue-bertscore-layers 999: Invalid num_layers: .* between 0 and 2"):
        BertScorer(BertScoreConfig(str(model), 999))
    assert BertScorer(BertScoreConfig(str(model), 1)).score(["a cough"], ["a cough"])[0][2] > 0.99
