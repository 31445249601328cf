"""Trust at the edges (issue 30): one test per class of problem an adversarial user found, through the public
interface (the plugin, `clue`, the readers). Each failed before the change; tests/test_hostile.py generates the
mutations of every file, these name the classes:

1. privacy through error paths   2. names that match nothing   3. loaders that crash or guess   4. edited baselines
5. replay files   6. the store and the CLI   7. inputs and outputs of any size   8. stopped runs, --help
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clue import baseline
from clue.backends.replay import read_outputs
from clue.config import data_files
from clue.errors import ConfigError, DataError, StoreError
from clue.store.sqlite import GenerationStore
from clue.tasks import get_task
from clue.types import Generation
from tests.conftest import FIXTURE_DATA, REPO, sigterm_once_started, sleeper, write_replay_matrix
from tests.hostile import CANARY, jsonl_mutation, names, plant
from tests.test_hostile import RAW_IDS, baseline_entry
from tests.test_plugin import answers, code_answers, make_project, mednli_records, run

pytest_plugins = ["pytester"]
FILES_MEDNLI = FIXTURE_DATA / "mednli/mli_test_v1.jsonl"


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    p = make_project(pytester)
    write_replay_matrix(p.path, {m: answers(set()) + code_answers() for m in ("base", "candidate")})
    return p


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


# -- 1. privacy through error paths -------------------------------------------------------------------------------


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
def test_a_refused_data_file_names_no_raw_id_or_value_in_any_artefact(project: pytest.Pytester, damage) -> None:  # type: ignore[no-untyped-def]
    """Before: the refusal wrote the raw duplicated id (MeDiSumQA's holds the patient's question) and the invalid
    label's sentence into junit.xml, index.html, summary.md and clue-results.json."""
    write_mednli(project, damage(mednli_records()))
    result = run(project, "-k", "mednli")
    result.assert_outcomes(errors=2)
    assert (project.path / "out/clue-results.json").is_file()
    assert not leaks(project.path / "out", RAW_IDS)
    assert CANARY not in result.stdout.str() and "Traceback" not in result.stdout.str()


EXPLODING_METRIC = """
from clue.metrics.extra import ExtraMetric
from clue.types import MetricSpec

def explode(sample, generation):
    raise ValueError("cannot score " + generation.text)  # a metric's message quoting the output

def pytest_clue_metrics(config):
    return [ExtraMetric(("mednli",), MetricSpec("length", "characters", gate=False), explode)]
"""


def test_an_exception_while_scoring_reaches_junit_without_traceback_locals_or_output(
    project: pytest.Pytester,
) -> None:
    """Before: pytest's long traceback went into junit.xml with the fixtures' arguments: `clue_generations =
    (Generation(sample_id='20000112/Why was my heart racing?', text='…'`. --clue-debug shows it, on request."""
    outputs = [{**row, "text": f"{CANARY} {row['text']}"} for row in answers(set())]
    write_replay_matrix(project.path, {m: outputs + code_answers() for m in ("base", "candidate")})
    project.makeconftest(EXPLODING_METRIC)
    result = run(project, "-k", "mednli")
    result.assert_outcomes(errors=2)
    junit = (project.path / "out/junit.xml").read_text()
    assert "ValueError (its message is withheld" in junit and "traceback withheld" in junit
    assert not leaks(project.path / "out", RAW_IDS) and CANARY not in result.stdout.str()
    assert "clue_generations =" not in junit and "Generation(sample_id" not in junit
    debug = run(project, "-k", "mednli", "--clue-debug")
    assert CANARY in (project.path / "out/junit.xml").read_text()  # the opt-in shows everything, and says so
    debug.stdout.fnmatch_lines(["*clue: --clue-debug shows full tracebacks*may contain patient text*"])
    assert "Traceback" in debug.stdout.str() or "def explode" in debug.stdout.str()


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


# -- 2. names that match nothing ----------------------------------------------------------------------------------


def test_a_data_option_that_names_no_task_is_a_usage_error(project: pytest.Pytester) -> None:
    """Before: --clue-data mednil=FILE exited 0 and gated the fixture data."""
    result = run(project, "-k", "mednli", "--clue-data", "mednil=data/mednli/mli_test_v1.jsonl")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--clue-data mednil=...: no task 'mednil'; tasks: mednli, meqsum, *longhealth*"])


def test_longhealth_names_the_file_of_all_three_sub_tasks(tmp_path: Path) -> None:
    """Before: --clue-data longhealth=FILE matched nothing (the tasks are longhealth_task1..3) and was ignored."""
    files = data_files(["longhealth=lh.json"], tmp_path, "--clue-data")
    assert files == {f"longhealth_task{i}": tmp_path / "lh.json" for i in (1, 2, 3)}
    with pytest.raises(ConfigError, match="task longhealth_task2 is given two files"):
        data_files(["longhealth=lh.json", "longhealth_task2=other.json"], tmp_path, "--clue-data")
    shutil.copy(FIXTURE_DATA / "longhealth/benchmark_v5.json", tmp_path / "lh.json")
    (tmp_path / "empty").mkdir()
    done = _clue("data", "check", "empty", "--data", "longhealth=lh.json", cwd=tmp_path)
    assert done.returncode == 0 and re.search(r"found +LongHealth .*lh\.json", done.stdout), done.stdout + done.stderr


# -- 3. loaders that crash or guess -------------------------------------------------------------------------------


def _longhealth(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "benchmark_v5.json"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def test_longhealth_refuses_what_it_used_to_crash_on_or_guess(tmp_path: Path) -> None:
    """Before: a non-UTF-8 byte gave a bare UnicodeDecodeError, a question that is a string an AttributeError, and a
    patient given twice was accepted (the last copy won)."""
    good = (FIXTURE_DATA / "longhealth/benchmark_v5.json").read_text()
    task = get_task("longhealth_task1")
    with pytest.raises(DataError, match=r"benchmark_v5.json: not UTF-8 text \(byte 1: invalid start byte\)"):
        task.load(_longhealth(tmp_path, b"{\xff" + good.encode()[1:]))
    data = json.loads(good)
    first = next(iter(data))
    data[first]["questions"][0] = "Which complication occurred?"
    with pytest.raises(DataError, match=rf"patient {first}, question 0: expected an object, got a string of 28"):
        task.load(_longhealth(tmp_path, json.dumps(data)))
    twice = good.replace(f'"{first}":', f'"{first}": {json.dumps(json.loads(good)[first])}, "{first}":', 1)
    with pytest.raises(DataError, match=f"an object holds the key '{first}' twice"):
        task.load(_longhealth(tmp_path, twice))


def test_a_damaged_meqsum_workbook_is_one_data_error(tmp_path: Path) -> None:
    """Before: broken sheet XML inside a sound zip gave an ExpatError traceback."""
    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(["File", "CHQ", "Summary"])
    book.active.append(["1", "question", "summary"])
    good = tmp_path / "good.xlsx"
    book.save(good)
    bad = tmp_path / "MeQSum_ACL2019_BenAbacha_Demner-Fushman.xlsx"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as dst:
        for item in src.infolist():
            payload = src.read(item.filename)
            dst.writestr(item, payload[: len(payload) // 2] if item.filename.endswith("sheet1.xml") else payload)
    with pytest.raises(DataError, match=r"MeQSum_ACL2019_BenAbacha_Demner-Fushman.xlsx: not a readable .xlsx workbook"):
        get_task("meqsum").load(bad)


def test_data_check_reports_every_data_set_when_one_is_broken(tmp_path: Path) -> None:
    """Before: a broken LongHealth file stopped `clue data check` before the other data sets."""
    shutil.copytree(FIXTURE_DATA, tmp_path / "data")
    (tmp_path / "data/longhealth/benchmark_v5.json").write_bytes(b'{"p": "\xff"}')
    done = subprocess.run(
        [sys.executable, "-m", "clue", "data", "check", str(tmp_path / "data")], cwd=tmp_path, capture_output=True,
        text=True,
    )  # fmt: skip
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert re.search(r"INVALID +LongHealth .*benchmark_v5.json: not UTF-8", done.stdout), done.stdout
    for name in ("MedNLI", "Problem Summary", "MeDiSumQA", "MeDiSumCode"):
        assert re.search(rf"found +{name} ", done.stdout), done.stdout


# -- 4. baselines that can be edited without anyone noticing ------------------------------------------------------


def _edited(tmp_path: Path, edit: Callable[[Any], object]) -> Path:
    saved = baseline.write(tmp_path / "b.json", [baseline_entry()])
    document = json.loads(saved.read_text())
    edit(document["entries"][0])
    saved.write_text(json.dumps(document, indent=1))
    return saved


def _recompute(entry: dict[str, object]) -> dict[str, object]:
    entry["digest"] = baseline.digest(entry)
    return entry


def test_an_edited_baseline_is_refused_naming_the_file_and_entry(tmp_path: Path) -> None:
    """Before: every score set to 1.0 was taken as measured (the candidate was REGRESSED on numbers nobody
    measured); a copy of a sample with other scores was used; NaN and an accuracy of 7 failed deep in stats.py."""

    def all_perfect(entry: Any) -> Any:
        for sample in entry["samples"]:
            sample["scores"] = {k: 1.0 for k in sample["scores"]}
        return entry

    def appended_copy(entry: Any) -> Any:
        entry["samples"].append({**entry["samples"][0], "scores": {"accuracy": 0.0, "rougeL": 0.0}})
        return entry

    digest = r"b.json, entry 0 \(mednli/base\): its content does not match the digest written when it was saved"
    for edit in (all_perfect, appended_copy, lambda e: e["samples"].pop()):
        with pytest.raises(ConfigError, match=digest):
            baseline.load(_edited(tmp_path, edit))
    # whoever recomputes the digest gets past it (README), but not past the checks of what a score can be
    with pytest.raises(ConfigError, match=r"b.json, entry 0 \(mednli/base\), sample 0+: listed twice"):
        baseline.load(_edited(tmp_path, lambda e: (appended_copy(e), e.update(n=9), _recompute(e))))
    seven = _edited(tmp_path, lambda e: (e["samples"][1]["scores"].update(accuracy=7), _recompute(e)))
    with pytest.raises(ConfigError, match=r"sample 0+1, metric accuracy: the score is not 0 or 1"):
        baseline.load(seven)
    over = _edited(tmp_path, lambda e: (e["samples"][1]["scores"].update(rougeL=1.5), _recompute(e)))
    with pytest.raises(ConfigError, match=r"metric rougeL: the score is outside this metric's range \[0, 1\]"):
        baseline.load(over)
    nan = baseline.write(tmp_path / "b.json", [baseline_entry()])
    nan.write_text(nan.read_text().replace('"rougeL": 0.125', '"rougeL": NaN', 1))
    with pytest.raises(ConfigError, match=r"baseline .*b.json: NaN is not a number JSON allows"):
        baseline.load(nan)


def test_an_edited_baseline_stops_the_run_before_any_test(project: pytest.Pytester) -> None:
    run(project, "-k", "mednli", "--clue-save-baseline", "b.json").assert_outcomes(passed=2)
    saved = project.path / "b.json"
    saved.write_text(saved.read_text().replace('"accuracy": 1.0', '"accuracy": 0.0', 5))
    result = run(project, "-k", "mednli", "--clue-baseline", "b.json#base")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*b.json, entry * (mednli/base): its content does not match the digest*"])


# -- 5. replay files ----------------------------------------------------------------------------------------------


def test_replay_files_refuse_ambiguous_records_and_unknown_tasks(tmp_path: Path) -> None:
    """Before: a sample recorded twice with different texts was scored with the last one, and a task written
    `MedNLI` was ignored without a word."""
    path = tmp_path / "outputs.jsonl"
    rows = [
        {"task": "mednli", "sample_id": "a1", "text": "NEUTRAL"},
        {"task": "mednli", "sample_id": "a1", "text": "X"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match=r"outputs.jsonl, record line 2: the sample \(hashed [0-9a-f]{16}\) of mednli"):
        read_outputs(path)
    path.write_text(json.dumps({"task": "mednli", "sample_id": "a1", "text": "N"}) * 1 + "\n" * 2)
    assert read_outputs(path) == {("mednli", "a1"): "N"}
    path.write_text(json.dumps({"task": "MedNLI", "sample_id": "a1", "text": "N"}) + "\n")
    with pytest.raises(ConfigError, match=r"line 1: no task 'MedNLI' \(did you mean mednli\?\); tasks: mednli, "):
        read_outputs(path)


def test_replay_problems_are_usage_errors_and_stray_records_a_warning(project: pytest.Pytester) -> None:
    rows = answers(set()) + code_answers()
    write_replay_matrix(project.path, {"base": rows, "candidate": [*rows, {**rows[0], "task": "MedNLI"}]})
    result = run(project, "-k", "mednli")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*model 'candidate': *candidate.jsonl*: no task 'MedNLI' (did you mean mednli?)*"])
    stray = [*rows, {"task": "mednli", "sample_id": "no-such-pair", "text": "NEUTRAL"}]
    write_replay_matrix(project.path, {"base": rows, "candidate": stray})
    result = run(project, "-k", "mednli")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*candidate.jsonl: 1 record(s) of mednli match no sample of its data (hashed ids *"])


# -- 6. the store and the CLI -------------------------------------------------------------------------------------


def _store_with_one(tmp_path: Path) -> Path:
    store = GenerationStore(tmp_path / "cache/generations.sqlite3")
    store.put("k1", "base", "mednli", Generation("s1", "NEUTRAL", 3, 1, "stop", 0.1))
    store.close()
    return tmp_path / "cache/generations.sqlite3"


def _clue(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "clue", *args], cwd=cwd, capture_output=True, text=True)


def test_a_corrupt_store_is_one_error_naming_the_file_and_the_remedy(tmp_path: Path, project: pytest.Pytester) -> None:
    """Before: "generation failed: DatabaseError: database disk image is malformed", naming neither."""
    path = _store_with_one(tmp_path)
    path.write_bytes(b"SQLite format 3\x00" + b"\x13" * 5000)
    with pytest.raises(StoreError, match=rf"generation store {re.escape(str(path))} cannot be used .*move it aside"):
        GenerationStore(path).get_many(["k1"])
    done = _clue("store", "export", "--cache-dir", str(path.parent), "--out", "x.jsonl", cwd=tmp_path)
    assert done.returncode == 1 and done.stderr.startswith("clue: generation store") and "Traceback" not in done.stderr
    (project.path / "cache").mkdir()
    shutil.copy(path, project.path / "cache/generations.sqlite3")
    result = run(project, "-k", "mednli")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*generation store */cache/generations.sqlite3 cannot be used*move it aside*"])


def test_export_errors_are_one_line(tmp_path: Path) -> None:
    """Before: --out <existing folder> raised a traceback and --model typo wrote an empty file with exit 0."""
    _store_with_one(tmp_path)
    (tmp_path / "folder").mkdir()
    for args, message in [
        (["--out", "folder"], "clue: --out folder is a folder: name the JSON Lines file to write"),
        (["--model", "bsae", "--out", "x.jsonl"], "holds no generations of model 'bsae'; it holds base"),
        (["--task", "mednil", "--out", "x.jsonl"], "holds no generations of task 'mednil'; it holds mednli"),
    ]:
        done = _clue("store", "export", "--cache-dir", "cache", *args, cwd=tmp_path)
        assert done.returncode == 1 and message in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.jsonl").exists()


def test_a_read_only_store_serves_a_run_whose_generations_are_all_there(project: pytest.Pytester) -> None:
    """Before: a read-only cache folder failed a run whose generations were all stored. The folder is mounted
    read-only in a mount namespace of its own (CI runs as root, for whom file modes do not forbid writing)."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "--mount", "true"]).returncode != 0:
        pytest.skip("unshare --mount is not available here: a read-only mount cannot be made")
    run(project, "-k", "mednli").assert_outcomes(passed=2)
    cache = project.path / "cache"
    command = [sys.executable, "-m", "pytest", "-k", "mednli", "--clue-matrix", "models.toml", "--clue-data-dir",
               "data", "--clue-reports-dir", "out2", "--clue-cache-dir", "cache", "-p", "no:cacheprovider"]  # fmt: skip
    script = f"mount --bind {cache} {cache} && mount -o remount,bind,ro {cache} {cache} && exec {' '.join(command)}"
    done = subprocess.run(["unshare", "--mount", "sh", "-c", script], cwd=project.path, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "2 passed" in done.stdout
    # other decoding settings: nothing is stored for them, and the run says so before any model loads
    sampled = script + " --clue-temperature 0.5"
    done = subprocess.run(["unshare", "--mount", "sh", "-c", sampled], cwd=project.path, capture_output=True, text=True)
    assert "generations.sqlite3 is read-only and 50 generation(s) of base are not in it" in done.stdout, done.stdout
    store = GenerationStore(cache / "generations.sqlite3")
    store.read_only = True  # as it is opened on a read-only mount: storing something new is one clear error
    with pytest.raises(StoreError, match=r"generations.sqlite3 is read-only and a new generation must be stored"):
        store.put("k", "m", "t", Generation("s", "x", 1, 1, "stop", 0.0))


# -- 7. inputs and outputs of any size ----------------------------------------------------------------------------


def test_an_oversized_document_is_refused_at_load_with_its_size(tmp_path: Path) -> None:
    """Before: a 50 MB document was tokenised whole, 4 min 19 s and 11.6 GB for 4 prompts, with no warning
    (benchmarks/perf/oversize_input.py measures the refusal's time and memory)."""
    records = json.loads((FIXTURE_DATA / "medisumcode/MeDiSumCode.json").read_text())
    records[3]["text"] = "Pt. stable. " * 200_000
    path = tmp_path / "MeDiSumCode.json"
    path.write_text(json.dumps(records))
    with pytest.raises(DataError, match=r"index 3, field 'text': a string of 2,400,000 characters, over the limit"):
        get_task("medisumcode").load(path)


def test_a_huge_output_is_scored_on_its_prefix_and_flagged(pytester: pytest.Pytester) -> None:
    """Before: a 2 MB output crashed UMLS scoring (spaCy E088, max_length). The run's real scorers: the EntityRuler
    stand-in and the tiny BERT (a child process: spaCy and torch cannot be imported twice under pytester)."""
    task = get_task("problem_summary")
    samples = task.load(FIXTURE_DATA / "problem_summary/BioNLP2023-1A-Test.csv")
    rows = [{"task": "problem_summary", "sample_id": s.id, "text": str(s.reference)} for s in samples]
    scored = task.split(samples, 1)[1][0].id
    huge = {"task": "problem_summary", "sample_id": scored, "text": "hypertension, " * 150_000}  # 2.1 MB
    write_replay_matrix(
        pytester.path, {"base": rows, "candidate": [r for r in rows if r["sample_id"] != scored] + [huge]}
    )
    pytester.makepyfile(test_problem_summary=(REPO / "benchmarks/test_problem_summary.py").read_text())
    pytester.makeini("[pytest]\n")
    (pytester.path / "data").symlink_to(FIXTURE_DATA)
    result = pytester.runpytest_subprocess(
        "--clue-matrix", "models.toml", "--clue-data-dir", "data", "--clue-reports-dir", "out",
        "--clue-cache-dir", "cache", "-p", "no:cacheprovider", "--clue-bertscore-model", "tiny-bert",
        "--clue-umls-spacy-model", "ruler", "--clue-umls-linker", str(REPO / "fixtures/umls/kb.jsonl"),
        "--clue-report-samples",
    )  # fmt: skip
    result.assert_outcomes(passed=2)
    record = json.loads((pytester.path / "out/results/problem_summary/candidate.json").read_text())
    flagged = [s for s in record["samples"] if "scored_prefix" in s["flags"]]
    assert [s["id"] for s in flagged] == [huge["sample_id"]] and "umls_f1" in flagged[0]["scores"]


# -- 8. stopped runs and --help -----------------------------------------------------------------------------------


def test_a_stopped_run_lists_the_cases_that_did_not_run(project: pytest.Pytester) -> None:
    """Before: after SIGTERM, clue-results.json said `not_run: []` although no case had run."""
    project.makepyfile(test_aa_wait=sleeper("test_aa_waits"))
    command = [sys.executable, "-m", "pytest", "--clue-matrix", "models.toml", "--clue-data-dir", "data"]
    command += ["--clue-reports-dir", "out", "--clue-cache-dir", "cache", "-p", "no:cacheprovider"]
    sigterm_once_started(command, project.path)
    merged = json.loads((project.path / "out/clue-results.json").read_text())
    stopped = {(n["task"], n["model"]) for n in merged["not_run"] if n["status"] == "stopped"}
    assert stopped == {(t, m) for t in ("mednli", "medisumcode") for m in ("base", "candidate")}
    assert "candidate on mednli: stopped (the run was stopped" in (project.path / "out/summary.md").read_text()


def test_help_describes_the_baseline_case_id_as_it_is(pytester: pytest.Pytester) -> None:
    """Before: --help said `<model>-vs-<file name>`; the case id is the recorded model's name."""
    pytester.makeini("[pytest]\n")
    text = " ".join(pytester.runpytest("--help").stdout.str().split())
    assert "'<model>-vs-<recorded model>' (the model name stored in the baseline, not the file's name" in text
    assert "--clue-debug" in text and "may hold patient text" in text


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
