"""The plugin when something goes wrong: an exception while scoring reaches JUnit without a traceback, a data option
that names no task is a usage error, a huge output is scored on its prefix, a stopped run lists what did not run,
and --help says what a baseline case id is."""

from __future__ import annotations

import json
import sys

import pytest

from clue.tasks import get_task
from tests.e2e.test_privacy_paths import leaks
from tests.helpers import FIXTURE_DATA, REPO, sigterm_once_started, sleeper, write_replay_matrix
from tests.helpers.hostile import CANARY
from tests.helpers.hostile_files import RAW_IDS
from tests.helpers.replay_project import answers, code_answers, run

pytest_plugins = ["pytester"]


EXPLODING_METRIC = """
from clue.metrics.extra import ExtraMetric
from clue.types import MetricSpec

def explode(sample, generation):
    raise ValueError("cannot score " + generation.text)  # a metric's message quoting the output

def pytest_clue_metrics(config):
    return [ExtraMetric(("mednli",), MetricSpec("length", "characters", gate=False), explode)]
"""


def test_an_exception_while_scoring_reaches_junit_without_traceback_locals_or_output(
    answered: pytest.Pytester,
) -> None:
    """Before: pytest's long traceback went into junit.xml with the fixtures' arguments: `clue_generations =
    (Generation(sample_id='20000112/Why was my heart racing?', text='…'`. --clue-debug shows it, on request."""
    outputs = [{**row, "text": f"{CANARY} {row['text']}"} for row in answers(set())]
    write_replay_matrix(answered.path, {m: outputs + code_answers() for m in ("base", "candidate")})
    answered.makeconftest(EXPLODING_METRIC)
    result = run(answered, "-k", "mednli")
    result.assert_outcomes(errors=2)
    junit = (answered.path / "out/junit.xml").read_text()
    assert "ValueError (its message is withheld" in junit and "traceback withheld" in junit
    assert not leaks(answered.path / "out", RAW_IDS) and CANARY not in result.stdout.str()
    assert "clue_generations =" not in junit and "Generation(sample_id" not in junit
    debug = run(answered, "-k", "mednli", "--clue-debug")
    assert CANARY in (answered.path / "out/junit.xml").read_text()  # the opt-in shows everything, and says so
    debug.stdout.fnmatch_lines(["*clue: --clue-debug shows full tracebacks*may contain patient text*"])
    assert "Traceback" in debug.stdout.str() or "def explode" in debug.stdout.str()


def test_a_data_option_that_names_no_task_is_a_usage_error(answered: pytest.Pytester) -> None:
    """Before: --clue-data mednil=FILE exited 0 and gated the fixture data."""
    result = run(answered, "-k", "mednli", "--clue-data", "mednil=data/mednli/mli_test_v1.jsonl")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--clue-data mednil=...: no task 'mednil'; tasks: mednli, meqsum, *longhealth*"])


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


def test_a_stopped_run_lists_the_cases_that_did_not_run(answered: pytest.Pytester) -> None:
    """Before: after SIGTERM, clue-results.json said `not_run: []` although no case had run."""
    answered.makepyfile(test_aa_wait=sleeper("test_aa_waits"))
    command = [sys.executable, "-m", "pytest", "--clue-matrix", "models.toml", "--clue-data-dir", "data"]
    command += ["--clue-reports-dir", "out", "--clue-cache-dir", "cache", "-p", "no:cacheprovider"]
    sigterm_once_started(command, answered.path)
    merged = json.loads((answered.path / "out/clue-results.json").read_text())
    stopped = {(n["task"], n["model"]) for n in merged["not_run"] if n["status"] == "stopped"}
    assert stopped == {(t, m) for t in ("mednli", "medisumcode") for m in ("base", "candidate")}
    assert "candidate on mednli: stopped (the run was stopped" in (answered.path / "out/summary.md").read_text()


def test_help_describes_the_baseline_case_id_as_it_is(pytester: pytest.Pytester) -> None:
    """Before: --help said `<model>-vs-<file name>`; the case id is the recorded model's name."""
    pytester.makeini("[pytest]\n")
    text = " ".join(pytester.runpytest("--help").stdout.str().split())
    assert "'<model>-vs-<recorded model>' (the model name stored in the baseline, not the file's name" in text
    assert "--clue-debug" in text and "may hold patient text" in text


@pytest.mark.parametrize("setting", ['report_samples = "off"', 'report_samples = "false"', "report_samples = 0"])
def test_raw_samples_asked_for_in_words_are_a_usage_error_and_no_report_holds_a_raw_id(
    answered: pytest.Pytester, setting: str
) -> None:
    """The defect: `report_samples = "off"` in [tool.clue] switched raw-sample reports on, and raw MedNLI ids and
    sentences landed in every results file and index.html. Now any value but a TOML boolean is refused before
    anything runs, and nothing is written."""
    answered.makepyprojecttoml(f"[tool.clue]\n{setting}\n")
    result = run(answered, "-k", "mednli")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*[[]tool.clue[]] report_samples expects true or false, got *"])
    assert not (answered.path / "out" / "results").exists()
    if (answered.path / "out").exists():
        assert not leaks(answered.path / "out", RAW_IDS)
