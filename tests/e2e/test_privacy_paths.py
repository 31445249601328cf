"""Privacy through error paths: a refused data file, mutated credentialed data and a server's error detail leave no
raw id or text in any artefact; the scan itself finds what it should (a planted canary) and nothing else (digits
inside a duration)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clue.tasks import get_task
from clue.types import Generation
from tests.helpers import FIXTURE_DATA, REPO, write_replay_matrix
from tests.helpers.hostile import CANARY, jsonl_mutation, names, plant
from tests.helpers.hostile_files import RAW_IDS
from tests.helpers.replay_project import answers, mednli_records, run

pytest_plugins = ["pytester"]


FILES_MEDNLI = FIXTURE_DATA / "mednli/mli_test_v1.jsonl"


def leaks(folder: Path, raw_ids: set[str]) -> list[str]:
    """Every (file, secret) where a file the run wrote holds the canary (anywhere) or a raw id (as an id)."""
    found = []
    for path in (p for p in folder.rglob("*") if p.is_file()):
        text = path.read_text(encoding="utf-8", errors="replace")
        found += [f"{path.name}: {CANARY!r}"] if CANARY in text else []
        found += [f"{path.name}: {i[:40]!r}" for i in raw_ids if names(text, i)]
    return found


def write_mednli(p: pytest.Pytester, records: list[dict[str, object]]) -> None:
    (p.path / "data/mednli/mli_test_v1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def _duplicate_id(records: list[dict[str, object]]) -> list[dict[str, object]]:
    records[5]["pairID"] = records[2]["pairID"] = f"{CANARY}-note-17/Why was my heart racing"
    return records


def _label_sentence(records: list[dict[str, object]]) -> list[dict[str, object]]:
    records[4]["gold_label"] = f"{CANARY} the patient denies chest pain"
    return records


def _id_of_another_type(records: list[dict[str, object]]) -> list[dict[str, object]]:
    records[4]["pairID"] = {"mrn": CANARY}
    return records


@pytest.mark.parametrize("damage", [_duplicate_id, _label_sentence, _id_of_another_type])
def test_a_refused_data_file_names_no_raw_id_or_value_in_any_artefact(answered: pytest.Pytester, damage) -> None:  # type: ignore[no-untyped-def]
    """Before: the refusal wrote the raw duplicated id (MeDiSumQA's holds the patient's question) and the invalid
    label's sentence into junit.xml, index.html, summary.md and clue-results.json."""
    write_mednli(answered, damage(mednli_records()))
    result = run(answered, "-k", "mednli")
    result.assert_outcomes(errors=2)
    assert (answered.path / "out/clue-results.json").is_file()
    assert not leaks(answered.path / "out", RAW_IDS)
    assert CANARY not in result.stdout.str() and "Traceback" not in result.stdout.str()


@settings(max_examples=6, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_mutated_credentialed_data_never_reaches_an_artefact(pytester: pytest.Pytester, data: st.DataObject) -> None:
    """Whole runs on generated hostile MedNLI files: whatever the mutation, the run ends with results or a clean
    error, and no file it wrote holds the canary or a raw id."""
    folder = pytester.mkdir(f"run{len(list(pytester.path.iterdir()))}")
    shutil.copytree(FIXTURE_DATA / "medisumcode", folder / "data/medisumcode")
    (folder / "data/mednli").mkdir(parents=True)
    text = data.draw(jsonl_mutation(mednli_records()))
    (folder / "data/mednli/mli_test_v1.jsonl").write_text(text, encoding="utf-8")
    planted = [{**row, "text": f"{CANARY} {row['text']}"} for row in answers(set())]
    write_replay_matrix(folder, {"base": answers(set()), "candidate": planted})
    shutil.copy(REPO / "benchmarks/test_mednli.py", folder / "test_mednli.py")
    (folder / "pytest.ini").write_text("[pytest]\n")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--clue-matrix", "models.toml", "--clue-data-dir", "data",
         "--clue-reports-dir", "out", "--clue-cache-dir", "cache", "--junitxml", "out/junit.xml",
         "-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning"],
        cwd=folder, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stdout and "INTERNALERROR" not in done.stdout
    assert not leaks(folder / "out", RAW_IDS)


def test_the_detail_a_server_adds_to_a_failed_generation_stays_out_of_the_results(tmp_path: Path) -> None:
    """Before: a server's 400 body (vLLM's validation errors echo the request's messages) went into the results
    JSON of a credentialed task as the sample's error. The store keeps it; --clue-report-samples shows it."""
    from clue.run.case_record import result_record
    from clue.types import TaskResult

    task = get_task("mednli")
    samples = task.load(FILES_MEDNLI)[:12]
    body = f'HTTP 400 from http://127.0.0.1:8000/v1/chat/completions: {{"input": "{CANARY} SENTENCE_1: ..."}}'
    gens = tuple(
        Generation(s.id, "", 0, 0, "error", 0.0, error=body) if i == 0 else Generation(s.id, "NEUTRAL", 5, 1, "stop", 0)
        for i, s in enumerate(samples)
    )
    result = TaskResult("mednli", "m", task.metrics(None), tuple(task.score_all(samples, gens, None)), gens, {}, {})  # type: ignore[arg-type]
    for show in (False, True):
        record = result_record(result, None, samples=samples, show_samples=show, alpha=0.025, resamples=10, seed=1)
        error = record.samples[0].error or ""
        assert error.startswith("HTTP 400 from http://127.0.0.1:8000/v1/chat/completions")
        assert (CANARY in error) is show


def test_a_planted_canary_is_what_the_scan_would_find(tmp_path: Path) -> None:
    """The scan itself can fail: a file holding a planted value is reported."""
    (tmp_path / "a.json").write_text(json.dumps(plant({"x": "y"})))
    assert leaks(tmp_path, set()) == [f"a.json: {CANARY!r}"]


@given(whole=st.integers(0, 9999), zeros=st.integers(0, 3))
def test_a_digit_id_inside_a_measured_duration_is_no_leak_and_the_id_itself_is(whole: int, zeros: int) -> None:
    """Before: the scan matched MeDiSumCode's hadm_id 20000113 inside clue-session.json's wall_s (a float such as
    3.20000113), and CI failed on a leak that was not one. The id as an id, in whatever quoting, is still found."""
    raw_id = "20000113"
    duration = json.dumps({"wall_s": float(f"{whole}.{'0' * zeros}{raw_id}"), "backend_s": 3.1820000113})
    assert raw_id in duration and not names(duration, raw_id)  # a substring scan would call this a leak
    for shown in (f'"{raw_id}"', f"sample {raw_id}: no output", f"{raw_id}/Why", f"id={raw_id}.", f"<td>{raw_id}</td>"):
        assert names(f"{duration} {shown}", raw_id), shown
