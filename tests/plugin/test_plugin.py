"""The pytest plugin end to end, with pytester: the gate fails a regression with a useful message, passes a
non-regression, -k selects tasks, reports are written, and bad configuration or data is reported clearly.

Models here use the replay backend (recorded outputs), so each scenario's outcome is known exactly."""

from __future__ import annotations

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

from clue.store.sqlite import GenerationStore
from clue.util.pseudonyms import hash_id
from tests.helpers import REPO, junit_suite_properties
from tests.helpers.replay_project import mednli_records, run, scored_indices, write_models

pytest_plugins = ["pytester"]


def test_regressed_candidate_fails_with_metric_base_model_delta_ci_p_n(project: pytest.Pytester) -> None:
    write_models(project, base_wrong=set(), candidate_wrong=set(scored_indices()[:20]))
    result = run(project, "-k", "mednli")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*test_mednli*candidate*",
            "*REGRESSED mednli: model 'candidate' vs base 'base'*",
            "*accuracy: base=1.0000 model=0.6000 delta=-0.4000 95% CI [[]-0.*, -0.*[]] margin=0.02 p(regression)=*"
            " n=50 (Tango score interval, continuity-corrected (20 worse, 0 better of 50 pairs)) MDE=0.* -> regressed",
        ]
    )
    assert "Traceback" not in result.stdout.str()
    record = json.loads((project.path / "out/results/mednli/candidate.json").read_text())
    assert record["verdict"] == "regressed"
    assert record["metrics"]["accuracy"]["value"] == pytest.approx(0.6)
    assert len(record["samples"]) == 50


def test_tiny_p_values_keep_their_significant_digits_in_junit(project: pytest.Pytester) -> None:
    """Rounded to 6 decimals, a p-value of 1.7e-09 read 0.0 in JUnit."""
    write_models(project, base_wrong=set(), candidate_wrong=set(scored_indices()[:45]))
    run(project, "-k", "mednli").assert_outcomes(passed=1, failed=1)
    props = junit_suite_properties(project.path / "out/junit.xml")
    record = json.loads((project.path / "out/results/mednli/candidate.json").read_text())
    p_value = record["metrics"]["accuracy"]["comparison"]["p_regression"]
    assert 0 < p_value < 1e-7
    assert float(props["clue.mednli[candidate].accuracy.p_regression"]) == pytest.approx(p_value, rel=1e-5)


def test_non_inferior_candidate_passes_and_reports_are_written(project: pytest.Pytester) -> None:
    write_models(project, base_wrong=set(scored_indices()[:10]), candidate_wrong=set(scored_indices()[:10]))
    result = run(project)
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        [
            "*clue results*",
            # MedNLI, 50 identical answers: Tango's interval is +-0.071, too wide to show non-inferiority at a 0.02
            # margin, so the case passes as inconclusive (the old plug-in test called it non-inferior)
            "*mednli [[]candidate[]] vs base: INCONCLUSIVE*",
            # identical recorded outputs hash to identical keys: the candidate reuses all of them from the store
            "*model loads: base 1, candidate 0; generations reused from the store: base 0, candidate 73*",
        ]
    )
    merged = json.loads((project.path / "out/clue-results.json").read_text())
    assert {(r["task"], r["model"]) for r in merged["results"]} == {
        ("mednli", "base"),
        ("mednli", "candidate"),
        ("medisumcode", "base"),
        ("medisumcode", "candidate"),
    }
    cand = next(r for r in merged["results"] if r["model"] == "candidate" and r["task"] == "medisumcode")
    assert cand["metrics"]["icd_exact_f1"]["value"] == 1.0
    assert cand["metrics"]["icd_exact_f1"]["comparison"]["verdict"] == "non-inferior"
    assert cand["generation_settings"]["decoding"] == "greedy"
    assert cand["provenance"]["data"]["sha256"]
    # JUnit XML carries the metrics as the suite's properties, named after the case's test id
    props = junit_suite_properties(project.path / "out/junit.xml")
    case = "clue.mednli[candidate]"
    assert props[f"{case}.accuracy"] == "0.8" and props[f"{case}.accuracy.verdict"] == "inconclusive"
    assert float(props[f"{case}.accuracy.mde"]) > float(props[f"{case}.accuracy.margin"]) == 0.02  # MDE: n too small
    assert props[f"{case}.base"] == "base" and props[f"{case}.base_kind"] == "model"
    assert "PytestWarning" not in result.stdout.str()
    html = (project.path / "out/index.html").read_text()
    assert html.count('<td class="cell verdict-') == 4 and "No model regressed" in html
    assert "| candidate |" in (project.path / "out/summary.md").read_text()
    result.stdout.fnmatch_lines(["*report: */out/index.html (summary: */out/summary.md)*"])
    assert "p003" not in (project.path / "out/clue-results.json").read_text()  # MIMIC-style ids are hashed


def test_report_samples_option_writes_ids_and_text(project: pytest.Pytester) -> None:
    write_models(project, base_wrong=set(), candidate_wrong=set())
    run(project, "-k", "mednli", "--clue-report-samples").assert_outcomes(passed=2)
    record = json.loads((project.path / "out/results/mednli/candidate.json").read_text())
    assert record["samples_shown"] and {s["id"] for s in record["samples"]} <= {r["pairID"] for r in mednli_records()}
    assert record["samples"][0]["output"].startswith("The relation is")


def test_dash_k_selects_one_task_and_generates_only_that(project: pytest.Pytester) -> None:
    write_models(project, base_wrong=set(), candidate_wrong=set())
    result = run(project, "-k", "medisumcode")
    result.assert_outcomes(passed=2)
    assert not (project.path / "out/results/mednli").exists()
    stored = GenerationStore(project.path / "cache/generations.sqlite3")
    tasks = {row[0] for row in stored._connect().execute("SELECT DISTINCT task FROM generations")}
    assert tasks == {"medisumcode"}
    assert not (project.path / "out/generations").exists()  # outputs stay out of the published reports


def test_inconclusive_warns_and_fails_under_strict(project: pytest.Pytester) -> None:
    idx = scored_indices()
    write_models(project, base_wrong=set(idx[:5]), candidate_wrong=set(idx[3:11]))
    result = run(project, "-k", "mednli")
    result.assert_outcomes(passed=2, warnings=1)
    result.stdout.fnmatch_lines(["*ClueInconclusiveWarning: INCONCLUSIVE mednli*"])
    strict = run(project, "-k", "mednli", "--clue-strict")
    strict.assert_outcomes(passed=1, failed=1)
    strict.stdout.fnmatch_lines(["*--clue-strict: inconclusive comparisons fail*"])


def test_improvement_never_fails_even_under_strict(project: pytest.Pytester) -> None:
    write_models(project, base_wrong=set(scored_indices()[:30]), candidate_wrong=set())
    result = run(project, "-k", "mednli", "--clue-strict")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*mednli [[]candidate[]] vs base: IMPROVED*"])


def test_per_metric_margin_changes_the_verdict(project: pytest.Pytester) -> None:
    write_models(project, base_wrong=set(), candidate_wrong=set(scored_indices()[:8]))  # delta -0.16
    run(project, "-k", "mednli").assert_outcomes(passed=1, failed=1)
    run(project, "-k", "mednli", "--clue-margin", "accuracy=0.5").assert_outcomes(passed=2)


def test_missing_data_skips_with_where_to_put_it(project: pytest.Pytester) -> None:
    write_models(project, base_wrong=set(), candidate_wrong=set())
    (project.path / "data/mednli/mli_test_v1.jsonl").unlink()
    result = run(project, "-k", "mednli", "-rs")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*MedNLI: no data; put mli_test_v1.jsonl in */data/mednli/ or pass --clue-data*"])


def test_invalid_data_fails_naming_file_record_and_field(project: pytest.Pytester) -> None:
    write_models(project, base_wrong=set(), candidate_wrong=set())
    path = project.path / "data/mednli/mli_test_v1.jsonl"
    lines = path.read_text().splitlines()
    lines[6] = json.dumps({"sentence1": "a", "sentence2": "b", "gold_label": "unsure"})
    path.write_text("\n".join(lines) + "\n")
    result = run(project, "-k", "mednli")
    result.assert_outcomes(errors=2)  # a setup error: the test cannot run on unusable data
    result.stdout.fnmatch_lines(
        ["*mli_test_v1.jsonl, record line 7, field 'gold_label': a string of 6 characters, not one of entailment*"]
    )
    assert "unsure" not in result.stdout.str()  # a value that failed validation is described, never quoted
    assert "Traceback" not in result.stdout.str()
    assert "During handling" not in result.stdout.str()


def test_missing_replay_output_fails_that_sample_only(project: pytest.Pytester) -> None:
    write_models(project, base_wrong=set(), candidate_wrong=set())
    rows = [json.loads(x) for x in (project.path / "candidate.jsonl").read_text().splitlines()]
    (project.path / "candidate.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[1:]))
    result = run(project, "-k", "mednli")
    record = json.loads((project.path / "out/results/mednli/candidate.json").read_text())
    assert record["failed_generations"] == 1
    failed = [s for s in record["samples"] if s["error"]]
    assert failed[0]["id"] == hash_id("mednli", "p000") and "no recorded output" in failed[0]["error"]
    assert "generation_error" in failed[0]["flags"]
    assert failed[0]["scores"]["accuracy"] == 0.0  # a failed generation counts as a wrong answer
    result.assert_outcomes(passed=2, warnings=1)  # 1 worse of 50: inconclusive, not a crash


def test_a_stored_deterministic_failure_is_retried_and_can_be_rescored(project: pytest.Pytester) -> None:
    """Failures were not stored, so --clue-rescore could never succeed once a generation failed for good. Now a
    normal run retries a stored failure, and a rescore scores it as failed without generating."""
    write_models(project, base_wrong=set(), candidate_wrong=set())
    rows = [json.loads(x) for x in (project.path / "candidate.jsonl").read_text().splitlines()]
    (project.path / "candidate.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[1:]))
    run(project, "-k", "mednli").assert_outcomes(passed=2, warnings=1)
    again = run(project, "-k", "mednli")  # the failure is retried (and fails again), the rest reused
    again.stdout.fnmatch_lines(["*generations reused from the store: base 50, candidate 49*"])
    rescored = run(project, "-k", "mednli", "--clue-rescore")
    rescored.assert_outcomes(passed=2, warnings=1)
    record = json.loads((project.path / "out/results/mednli/candidate.json").read_text())
    assert record["failed_generations"] == 1


def test_a_systematic_failure_errors_instead_of_becoming_a_verdict(project: pytest.Pytester) -> None:
    """A replay file whose sample ids match none of the data's fails every sample: that is a broken run, not a
    regression. (A task name that is no task's is a usage error: tests/plugin/test_plugin_errors.py.)"""
    write_models(project, base_wrong=set(), candidate_wrong=set())
    rows = [json.loads(x) for x in (project.path / "candidate.jsonl").read_text().splitlines()]
    for row in rows:
        row["sample_id"] = f"v2-{row['sample_id']}"
    (project.path / "candidate.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = run(project, "-k", "mednli")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*model 'candidate', mednli: 50 of 50 generations failed (100% > --clue-max-failed-share 5%)*"
         "not a verdict. First error (sample *): no recorded output*"]
    )  # fmt: skip
    assert "REGRESSED" not in result.stdout.str() and "p000" not in result.stdout.str()  # MIMIC id hashed
    lenient = run(project, "-k", "mednli", "--clue-max-failed-share", "1")
    lenient.assert_outcomes(passed=1, failed=1)  # explicitly allowed: scored as wrong answers


def test_bad_matrix_is_a_usage_error_without_traceback(project: pytest.Pytester) -> None:
    (project.path / "models.toml").write_text('[models.cand]\npath = "x"\nbase = "nobody"\n')
    result = run(project)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*clue: model matrix *models.toml: model 'cand': base 'nobody' is not an entry*"])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_no_model_configured_fails_with_how_to(project: pytest.Pytester) -> None:
    result = project.runpytest("-k", "mednli", "--clue-data-dir", "data", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*no models to evaluate: pass --clue-model PATH_OR_ID*"])


def test_help_lists_every_option(pytester: pytest.Pytester) -> None:
    from clue.config import OPTIONS

    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["clue: clinical LLM benchmark and regression gate:"])
    text = result.stdout.str()
    for opt in OPTIONS:
        assert "--clue-" + opt.name.replace("_", "-") in text
    assert "clue_margin" in text  # ini twins are listed too


def test_plugin_is_inert_in_a_project_without_clue_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_one():\n    assert True\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "clue results" not in result.stdout.str()
    assert not (pytester.path / "reports").exists()


def test_tool_clue_table_sets_defaults(project: pytest.Pytester) -> None:
    write_models(project, base_wrong=set(), candidate_wrong=set(scored_indices()[:8]))
    (project.path / "pyproject.toml").write_text(
        "[tool.pytest.ini_options]\n\n"
        '[tool.clue]\nmatrix = "models.toml"\ndata_dir = "data"\nreports_dir = "out"\n\n'
        "[tool.clue.margins]\naccuracy = 0.5\n"
    )
    (project.path / "tox.ini").unlink(missing_ok=True)
    (project.path / "pytest.ini").unlink(missing_ok=True)
    result = project.runpytest("-k", "mednli", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    assert (project.path / "out/results/mednli/candidate.json").is_file()


def test_margins_merge_per_key_across_configuration_sources(project: pytest.Pytester) -> None:
    """[tool.clue] margin = 0.05 with --clue-margin accuracy=0.03 on the command line: accuracy gets 0.03 and every
    other metric keeps 0.05 (the command-line list used to replace the whole margin setting, resetting it to 0.02);
    without any global margin, BERTScore-style per-metric defaults apply."""
    write_models(project, base_wrong=set(), candidate_wrong=set())
    (project.path / "pyproject.toml").write_text(
        "[tool.pytest.ini_options]\n\n"
        '[tool.clue]\nmatrix = "models.toml"\ndata_dir = "data"\nreports_dir = "out"\nmargin = 0.05\n'
    )
    (project.path / "tox.ini").unlink(missing_ok=True)
    project.runpytest("-p", "no:cacheprovider", "--clue-margin", "accuracy=0.03").assert_outcomes(passed=4)

    def margin(task: str, metric: str) -> float:
        record = json.loads((project.path / f"out/results/{task}/candidate.json").read_text())
        return float(record["metrics"][metric]["comparison"]["margin"])

    assert margin("mednli", "accuracy") == 0.03
    assert margin("medisumcode", "icd_exact_f1") == 0.05


def test_an_ini_false_overrides_a_tool_clue_true(project: pytest.Pytester) -> None:
    """[tool.clue] strict = true and clue_strict = false in the ini: the ini wins (it used to be ignored)."""
    write_models(project, base_wrong=set(scored_indices()[:5]), candidate_wrong=set(scored_indices()[3:11]))
    (project.path / "pyproject.toml").write_text(
        '[tool.clue]\nmatrix = "models.toml"\ndata_dir = "data"\nreports_dir = "out"\nstrict = true\n'
    )
    (project.path / "tox.ini").unlink(missing_ok=True)
    project.makeini("[pytest]\nclue_strict = false\n")
    project.runpytest("-p", "no:cacheprovider", "-k", "mednli").assert_outcomes(passed=2)
    project.makeini("[pytest]\n")
    project.runpytest("-p", "no:cacheprovider", "-k", "mednli").assert_outcomes(passed=1, failed=1)


def test_second_run_is_served_from_the_store_and_rescore_needs_no_model(project: pytest.Pytester) -> None:
    write_models(project, base_wrong=set(), candidate_wrong=set(scored_indices()[:3]))
    run(project, "-k", "mednli").assert_outcomes(passed=2, warnings=1)
    again = run(project, "-k", "mednli")
    again.stdout.fnmatch_lines(
        ["*model loads: base 0, candidate 0; generations reused from the store: base 50, candidate 50*"]
    )
    rescored = run(project, "-k", "mednli", "--clue-rescore", "--clue-margin", "0.5")
    rescored.assert_outcomes(passed=2)
    rescored.stdout.fnmatch_lines(["*model loads: base 0, candidate 0*"])
    missing = run(project, "-k", "mednli", "--clue-rescore", "--clue-seed", "2")
    missing.stdout.fnmatch_lines(["*--clue-rescore: 50 of 50 generations are not in the store*"])


def test_bootstrap_seed_keeps_the_store_and_fewshot_seed_changes_the_split(project: pytest.Pytester) -> None:
    """--clue-seed used to set the few-shot split, the bootstrap and the sampling seed at once, so a new bootstrap
    seed invalidated every stored generation. Now the bootstrap seed only moves intervals."""
    write_models(project, base_wrong=set(), candidate_wrong=set(scored_indices()[:3]))
    run(project, "-k", "mednli")
    rescored = run(project, "-k", "mednli", "--clue-rescore", "--clue-bootstrap-seed", "7")
    rescored.assert_outcomes(passed=2)  # every generation came from the store
    record = json.loads((project.path / "out/results/mednli/candidate.json").read_text())
    assert (record["provenance"]["bootstrap_seed"], record["provenance"]["fewshot_seed"]) == (7, 1)
    other_split = run(project, "-k", "mednli", "--clue-rescore", "--clue-fewshot-seed", "2")
    other_split.stdout.fnmatch_lines(["*--clue-rescore: * generations are not in the store*"])


def test_interrupted_run_resumes_without_regenerating(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backend that dies after 20 generations: the 20 are stored, and the next run only generates the rest."""
    write_models(project, base_wrong=set(), candidate_wrong=set())
    project.makeconftest(
        """
import os
from clue.backends.replay import ReplayBackend

original = ReplayBackend.generate

def dying(self, prompts, settings, *, desc="", on_result=None):
    if os.environ.get("CLUE_TEST_DIE"):
        def counting(i, g):
            on_result(i, g)
            if i == 19:
                raise KeyboardInterrupt
        return original(self, prompts, settings, desc=desc, on_result=counting)
    return original(self, prompts, settings, desc=desc, on_result=on_result)

ReplayBackend.generate = dying
"""
    )
    monkeypatch.setenv("CLUE_TEST_DIE", "1")
    # a real process, interrupted as by Ctrl-C after 20 generations
    died = run(project, "-k", "mednli and base", subprocess=True)
    assert died.ret == pytest.ExitCode.INTERRUPTED
    monkeypatch.delenv("CLUE_TEST_DIE")
    resumed = run(project, "-k", "mednli and base")
    resumed.assert_outcomes(passed=1)
    resumed.stdout.fnmatch_lines(["*generations reused from the store: base 20*"])


def test_a_model_name_with_a_slash_is_a_usage_error_naming_the_fix(project: pytest.Pytester) -> None:
    """`[models."org/cand"]` crashed with a raw FileNotFoundError when the results file was written."""
    write_models(project, base_wrong=set(), candidate_wrong=set())
    text = (project.path / "models.toml").read_text().replace("[models.candidate]", '[models."org/cand"]')
    (project.path / "models.toml").write_text(text)
    result = run(project, "-k", "mednli")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*model name 'org/cand': use letters, digits*put a hub id such as*in path*"])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


@pytest.mark.parametrize("family", ["xunit2", "xunit1"])
def test_junit_is_valid_against_the_junit_10_schema_in_both_families(project: pytest.Pytester, family: str) -> None:
    """Under xunit2 every test carried <properties> (invalid there, and one warning per test); under xunit1 the
    file and line attributes are not in the schema either. pytest's own junit-10.xsd (tests/helpers/junit-10.xsd) now
    accepts the file in both families: a regressed, a passed and a skipped case, the metrics in the suite's
    properties."""
    xmllint = shutil.which("xmllint")
    if xmllint is None:
        pytest.skip("xmllint not installed (Debian: libxml2-utils; .ci/run installs it)")
    write_models(project, base_wrong=set(), candidate_wrong=set(scored_indices()[:20]))
    project.makeini(f"[pytest]\njunit_family = {family}\n")
    (project.path / "data/medisumcode/MeDiSumCode.json").unlink()  # a skipped case too
    result = run(project)
    result.assert_outcomes(passed=1, failed=1, skipped=2)
    assert "incompatible with junit_family" not in result.stdout.str()
    junit = project.path / "out/junit.xml"
    done = subprocess.run(
        [xmllint, "--noout", "--schema", str(REPO / "tests/helpers/junit-10.xsd"), str(junit)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    props = junit_suite_properties(junit)
    assert props["clue.mednli[candidate].verdict"] == "regressed"
    assert props["clue.mednli[candidate].headline"].startswith("REGRESSED mednli: model 'candidate' vs base 'base';")
    assert float(props["clue.mednli[candidate].accuracy.delta"]) == pytest.approx(-0.4)
    failure = next(c for c in ET.parse(junit).iter("testcase") if c.get("name") == "test_mednli[candidate]")[0]
    assert failure.get("message", "").startswith("REGRESSED mednli: model 'candidate' vs base 'base'; accuracy 0.6")


def test_a_missing_model_folder_is_one_usage_error(project: pytest.Pytester) -> None:
    """--clue-model /nonexistent gave one setup error per test quoting the hub's repo-id rules."""
    result = project.runpytest("--clue-model", "/nonexistent", "--clue-data-dir", "data", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--clue-model: model 'candidate': path '/nonexistent': no such folder*"])
    assert "repo id" not in result.stderr.str() + result.stdout.str()


def test_a_mistyped_data_folder_leaves_reports_of_this_run_and_can_fail(project: pytest.Pytester) -> None:
    """--clue-data-dir /data/clu: everything skipped, exit 0, and index.html / summary.md / clue-results.json still
    showed the previous run's "MeQSum ... improved". Now the reports describe this run, and --clue-require-data
    (or --clue-strict) fails it."""
    write_models(project, base_wrong=set(scored_indices()[:30]), candidate_wrong=set())
    run(project).assert_outcomes(passed=4)
    assert "improved" in (project.path / "out/summary.md").read_text()
    typo = run(project, "--clue-data-dir", "nowhere")
    typo.assert_outcomes(skipped=4)
    summary = (project.path / "out/summary.md").read_text()
    assert "improved" not in summary and "**Nothing was gated" in summary
    assert "candidate on mednli: skipped (MedNLI: no data; put mli_test_v1.jsonl in" in summary
    merged = json.loads((project.path / "out/clue-results.json").read_text())
    assert merged["results"] == [] and {(n["task"], n["status"]) for n in merged["not_run"]} == {
        ("mednli", "skipped"),
        ("medisumcode", "skipped"),
    }
    assert "Nothing was gated" in (project.path / "out/index.html").read_text()
    required = run(project, "--clue-data-dir", "nowhere", "--clue-require-data")
    required.assert_outcomes(errors=4)  # a fixture that fails: an error; the exit status fails the CI job
    assert required.ret == pytest.ExitCode.TESTS_FAILED


def test_an_errored_task_is_named_in_the_reports(project: pytest.Pytester) -> None:
    """A truncated MeDiSumCode.json: the run failed with a good message, but summary.md listed only MedNLI and
    said "No model regressed against its base model"."""
    write_models(project, base_wrong=set(), candidate_wrong=set())
    path = project.path / "data/medisumcode/MeDiSumCode.json"
    path.write_text(path.read_text()[:500])
    result = run(project)
    result.assert_outcomes(passed=2, errors=2)
    summary = (project.path / "out/summary.md").read_text()
    assert "No model regressed" not in summary and "**Failing:**" in summary
    assert "candidate on medisumcode: error (" in summary and "invalid JSON" in summary


def test_the_junit_file_follows_the_reports_dir(project: pytest.Pytester) -> None:
    """benchmarks/conftest.py wrote reports/junit.xml whatever --clue-reports-dir said."""
    write_models(project, base_wrong=set(), candidate_wrong=set())
    project.makeconftest((REPO / "benchmarks" / "conftest.py").read_text())
    result = project.runpytest(
        "--clue-matrix", "models.toml", "--clue-data-dir", "data", "--clue-reports-dir", "elsewhere",
        "--clue-cache-dir", "cache", "-p", "no:cacheprovider", "-k", "mednli",
    )  # fmt: skip
    result.assert_outcomes(passed=2)
    assert (project.path / "elsewhere/junit.xml").is_file() and not (project.path / "reports").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--clue-margin", "accurcy=0.05"), "*--clue-margin: unknown metric(s) accurcy; metrics: accuracy, *"),
        (("--clue-limit", "0"), "*--clue-limit must be between 1 and 1e+08, got 0*"),
        (("--clue-dtype", "float8"), "*--clue-dtype 'float8' is not one of auto, float32, float16, bfloat16*"),
    ],
)
def test_typos_and_out_of_range_values_are_usage_errors(
    project: pytest.Pytester, args: tuple[str, ...], message: str
) -> None:
    """Each of these was accepted silently (an unknown metric's margin ignored, limit 0 meaning no limit, a dtype
    ignored unless a model was given on the command line)."""
    write_models(project, base_wrong=set(), candidate_wrong=set())
    result = run(project, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_cpu_threads_default_to_half_the_cores_and_are_applied(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch's default (every core) oversubscribes a shared machine: studies/README.md, cpu_threads.py."""
    import torch

    from clue.config import default_cpu_threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(8)))
    assert default_cpu_threads() == 4
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # a pytest -n worker's share, or the user's choice
    assert default_cpu_threads() == 3
    before = torch.get_num_threads()
    try:
        write_models(project, base_wrong=set(), candidate_wrong=set())
        run(project, "-k", "medisumcode", "--clue-cpu-threads", "1").assert_outcomes(passed=2)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_progress_shows_under_normal_capture_and_not_under_q_or_in_junit(project: pytest.Pytester) -> None:
    """All of a model's generation happens inside its first test, where pytest captures output: the terminal
    showed only the file name for the whole run. Progress now reaches the terminal, one line per model."""
    write_models(project, base_wrong=set(), candidate_wrong={3})
    result = run(project, "-k", "mednli", subprocess=True)
    result.stdout.fnmatch_lines(["*clue: base (replay): 50/50 prompts, *, done in *", "*clue: candidate (replay): *"])
    assert "prompts" not in (project.path / "out/junit.xml").read_text()
    quiet = run(project, "-k", "mednli", "-q", "--clue-cache-dir", "cache2", subprocess=True)
    assert "prompts," not in quiet.stdout.str()


def test_progress_rates_count_from_the_engine_start_not_from_a_burst_of_results() -> None:
    """Before: the rates counted from the first result, so an engine that returns many results at once (vLLM, a
    chunk of 100 after 3 min 41 s) showed "100/100 prompts, 5180.99 prompts/s". Now a backend's start signal
    (done = 0, once the engine is up) is where the rates count from; without one, the first result still is."""
    from contextlib import nullcontext
    from types import SimpleNamespace

    from clue.plugin.terminal import TerminalProgress

    lines: list[str] = []
    reporter = SimpleNamespace(isatty=lambda: False, write_line=lines.append)
    capture = SimpleNamespace(global_and_fixture_disabled=nullcontext)
    plugins = {"terminalreporter": reporter, "capturemanager": capture}
    config = SimpleNamespace(pluginmanager=SimpleNamespace(get_plugin=plugins.get))
    progress = TerminalProgress(config)  # type: ignore[arg-type]
    progress("m", "vllm", 0, 100, 0, 20.0)  # engine up 20 s after the work began (its load)
    progress("m", "vllm", 1, 100, 50, 241.0)
    progress("m", "vllm", 100, 100, 5000, 241.0)  # the rest arrive in the same instant
    assert lines[-1] == "clue: m (vllm): 100/100 prompts, 0.45 prompts/s, 22.6 tokens/s, done in 4m01s"
    progress("n", "transformers", 1, 3, 10, 30.0)  # no start signal: from the first result (its load excluded)
    progress("n", "transformers", 3, 3, 30, 40.0)
    assert lines[-1] == "clue: n (transformers): 3/3 prompts, 0.20 prompts/s, 2.0 tokens/s, done in 40s"


def test_ctrl_c_before_any_case_finished_rewrites_the_reports_as_interrupted(project: pytest.Pytester) -> None:
    """pytest rewrites junit.xml on Ctrl-C; the HTML and Markdown reports kept the previous run's verdicts."""
    write_models(project, base_wrong=set(scored_indices()[:30]), candidate_wrong=set())
    run(project, "-k", "mednli").assert_outcomes(passed=2)
    assert "improved" in (project.path / "out/summary.md").read_text()
    project.makeconftest(
        """
from clue.backends.replay import ReplayBackend

def interrupt(self, prompts, settings, **kwargs):
    raise KeyboardInterrupt

ReplayBackend.generate = interrupt
"""
    )
    interrupted = run(project, "-k", "mednli", "--clue-cache-dir", "fresh-cache", subprocess=True)
    assert interrupted.ret == pytest.ExitCode.INTERRUPTED
    summary = (project.path / "out/summary.md").read_text()
    assert "improved" not in summary and "stopped (Ctrl-C or SIGTERM) before every selected case finished" in summary
    assert json.loads((project.path / "out/clue-results.json").read_text())["interrupted"] is True


def test_github_actions_gets_annotations_and_failures_start_with_one_readable_line(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under GITHUB_ACTIONS, a regressed case is an error annotation and an inconclusive one a warning; a failure
    message starts with task, model, base, verdict and the primary metric's Δ and CI."""
    write_models(project, base_wrong=set(), candidate_wrong=set(scored_indices()[:20]))
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    result = run(project, "-k", "mednli")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "REGRESSED mednli: model 'candidate' vs base 'base'; accuracy 0.6000 vs 1.0000, "
            "Δ -0.4000, 95% CI [[]-0.*, -0.*[]]",
            "::error title=clue mednli [[]candidate[]]%3A regressed::REGRESSED mednli: model 'candidate' vs base "
            "'base'; accuracy *",
        ]
    )
    monkeypatch.delenv("GITHUB_ACTIONS")
    assert "::error" not in run(project, "-k", "mednli").stdout.str()
