"""Stored baselines (`--clue-save-baseline`, `--clue-baseline`, `baseline = ...` in the matrix): a candidate gated
against stored scores gets the verdicts and numbers of a run with its base model, without loading it; a baseline
that measured something else is refused with every difference named; -k / --clue-limit subsets work; several
baselines are several cases; a candidate whose outputs are its base's fails.

Models are replayed (recorded outputs), so each scenario's outcome is known exactly; the last test saves and
gates on the embedded default (two tiny random Llama models) in a child process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from clue import baseline
from clue.errors import ConfigError
from clue.records import BaselineEntry
from tests.helpers import REPO
from tests.helpers.replay_project import answers, code_answers, run, scored_indices, write_models

pytest_plugins = ["pytester"]


def comparison(path: Path, metric: str) -> dict[str, Any]:
    record = json.loads(path.read_text())
    return dict(record["metrics"][metric]["comparison"])


def candidate_only(p: pytest.Pytester, baselines: list[str], outputs: list[dict[str, str]] | None = None) -> None:
    """A matrix without the base model: the candidate is gated against stored baselines only."""
    rows = outputs or answers(set(scored_indices()[:20])) + code_answers()
    (p.path / "candidate.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (p.path / "models.toml").write_text(
        f'[models.candidate]\npath = "candidate.jsonl"\nbackend = "replay"\nbaseline = {json.dumps(baselines)}\n'
    )


def test_a_candidate_gated_against_a_saved_baseline_gets_the_numbers_of_a_run_with_its_base(
    project: pytest.Pytester,
) -> None:
    write_models(project, base_wrong=set(), candidate_wrong=set(scored_indices()[:20]))
    first = run(project, "--clue-save-baseline", "baselines/main.json")
    first.assert_outcomes(passed=3, failed=1)
    first.stdout.fnmatch_lines(["*baseline saved: */baselines/main.json (4 task x model entries)*"])
    live = {t: project.path / f"out/results/{t}/candidate.json" for t in ("mednli", "medisumcode")}
    expected = {t: json.loads(p.read_text()) for t, p in live.items()}

    candidate_only(project, ["baselines/main.json#base"])
    second = run(project)
    second.assert_outcomes(passed=1, failed=1)  # medisumcode non-inferior, mednli regressed, as before
    second.stdout.fnmatch_lines(
        [
            "*REGRESSED mednli: model 'candidate' vs baseline 'base'; accuracy 0.6000 vs 1.0000, Δ -0.4000*",
            "*model loads: candidate 0; generations reused from the store: candidate 73*",  # the base: never loaded
        ]
    )
    assert "base 0" not in second.stdout.str()
    for task, record in expected.items():
        stored = json.loads((project.path / f"out/results/{task}/candidate-vs-base.json").read_text())
        assert stored["verdict"] == record["verdict"] and stored["base_kind"] == "baseline"
        for metric, entry in record["metrics"].items():
            ours = stored["metrics"][metric]["comparison"]
            for key in ("base_mean", "delta", "ci_low", "ci_high", "p_regression", "verdict", "mde"):
                assert ours[key] == entry["comparison"][key], (task, metric, key)
    summary = (project.path / "out/summary.md").read_text()
    assert "| candidate-vs-base |" in summary


def test_the_baseline_file_holds_no_text_and_diffs_line_by_line(project: pytest.Pytester) -> None:
    write_models(project, base_wrong=set(), candidate_wrong=set(scored_indices()[:5]))
    run(project, "--clue-save-baseline", "b.json", "--clue-report-samples").assert_outcomes(passed=4)
    text = (project.path / "b.json").read_text()
    assert "The relation is" not in text and "p003" not in text and "Patient 3" not in text  # hashed, no text
    lines = text.splitlines()
    assert sum('"scores"' in line for line in lines) == 2 * (50 + 23)  # one line per sample: readable diffs
    loaded = baseline.load(project.path / "b.json")
    assert [key for key in loaded.entries] == sorted(loaded.entries)  # stable order
    first = text
    run(project, "--clue-save-baseline", "b.json").assert_outcomes(passed=4)
    assert (project.path / "b.json").read_text() == first  # the same run writes the same bytes


def test_a_baseline_that_measured_something_else_is_refused_naming_every_difference(
    project: pytest.Pytester,
) -> None:
    write_models(project, base_wrong=set(), candidate_wrong=set())
    run(project, "-k", "mednli", "--clue-limit", "20", "--clue-save-baseline", "b.json").assert_outcomes(passed=2)
    candidate_only(project, ["b.json#base"])
    records = (project.path / "data/mednli/mli_test_v1.jsonl").read_text().splitlines()
    shot = min(set(range(len(records))) - set(scored_indices()))  # a few-shot example: every prompt shows it
    records[shot] = records[shot].replace(f"finding {shot}.", "a finding.")
    (project.path / "data/mednli/mli_test_v1.jsonl").write_text("\n".join(records) + "\n")
    result = run(project, "-k", "mednli", "--clue-temperature", "0.7")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*baseline */b.json ('base') does not match this run of mednli*",
            "*- data: the file's sha256 is * in the baseline, * now*",
            "*- decoding: temperature is 0.0 in the baseline, 0.7 now*",
            "*- samples: 30 of this run's 50 samples are not in the baseline, which holds 20*",
            "*- prompts: 20 of 20 samples' prompts differ from the baseline's*",
            "*Save the baseline again*",
        ]
    )
    summary = (project.path / "out/summary.md").read_text()
    assert "candidate-vs-base on mednli: error (baseline" in summary  # the failing case is named in the report


def test_differences_name_protocol_few_shot_and_metric_changes() -> None:
    def entry(**changes: Any) -> BaselineEntry:
        base: dict[str, Any] = {
            "task": "meqsum",
            "model": "base",
            "data": {"sha256": "a" * 64},
            "protocol": {"version": 1, "n_shots": 3, "few_shot_ids": ["x", "y", "z"]},
            "decoding": {"temperature": 0.0, "top_p": 1.0, "seed": 1},
            "metrics": {"rouge1": {"kind": "continuous", "higher_is_better": True, "fingerprint": {"stem": "off"}}},
            "samples": [{"id": "s1", "prompt": "p1", "scores": {"rouge1": 0.5}}],
        }
        for key, value in changes.items():
            base[key] = {**base[key], **value} if isinstance(value, dict) else value
        return BaselineEntry.from_json(base, "test")

    assert baseline.differences(entry(), entry()) == []
    assert baseline.differences(entry(), entry(decoding={"seed": 2})) == []  # greedy: the seed does not matter
    found = baseline.differences(
        entry(),
        entry(
            protocol={"version": 2, "few_shot_ids": ["x", "y", "w"]},
            metrics={
                "rouge1": {"kind": "continuous", "higher_is_better": True, "fingerprint": {"stem": "on"}},
                "bertscore_f1": {"kind": "continuous", "higher_is_better": True, "fingerprint": {}},
            },
        ),
    )
    assert found == [
        "protocol: 1 of the 3 few-shot examples differ (few-shot seed?)",
        "protocol: version is 1 in the baseline, 2 now",
        "metric rouge1: fingerprint {'stem': 'off'} in the baseline, {'stem': 'on'} now",
        "metric bertscore_f1: not in the baseline (it has rouge1)",
    ]
    sampling = baseline.differences(
        entry(decoding={"temperature": 0.7}), entry(decoding={"temperature": 0.7, "seed": 2})
    )
    assert sampling == ["decoding: seed is 1 in the baseline, 2 now"]


def test_limit_and_k_subsets_of_a_baseline_give_the_live_numbers(project: pytest.Pytester) -> None:
    write_models(project, base_wrong=set(scored_indices()[:4]), candidate_wrong=set(scored_indices()[2:12]))
    run(project, "--clue-save-baseline", "b.json").assert_outcomes(passed=4)
    run(project, "-k", "mednli", "--clue-limit", "30").assert_outcomes(passed=2)
    live = comparison(project.path / "out/results/mednli/candidate.json", "accuracy")
    candidate_only(project, ["b.json#base"], answers(set(scored_indices()[2:12])) + code_answers())
    result = run(project, "-k", "mednli", "--clue-limit", "30")
    result.assert_outcomes(passed=1)
    stored = comparison(project.path / "out/results/mednli/candidate-vs-base.json", "accuracy")
    assert stored["n"] == 30 and stored == live | {"n": 30}
    assert not (project.path / "out/results/medisumcode/candidate-vs-base.json").exists()  # -k: not run


def test_several_baselines_are_several_cases_next_to_the_base_model(project: pytest.Pytester) -> None:
    write_models(project, base_wrong=set(scored_indices()[:4]), candidate_wrong=set(scored_indices()[:30]))
    run(project, "-k", "mednli", "--clue-save-baseline", "release-1.json").assert_outcomes(passed=1, failed=1)
    (project.path / "only-base.json").write_text(
        json.dumps(
            {
                **(doc := json.loads((project.path / "release-1.json").read_text())),
                "entries": [e for e in doc["entries"] if e["model"] == "base"],
            }
        )
    )
    write_models(project, base_wrong=set(scored_indices()[:4]), candidate_wrong=set(scored_indices()[:3]))
    result = run(
        project,
        "-k",
        "mednli",
        "--clue-baseline",
        "release-1.json#candidate=release-1",
        "--clue-baseline",
        "only-base.json",
    )
    # the candidate: vs its base model (live), vs the last release (improved), vs the base's stored scores
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        [
            "*mednli [[]candidate[]] vs base: *",
            "*mednli [[]candidate-vs-base[]] vs baseline base: *",
            "*mednli [[]candidate-vs-release-1[]] vs baseline release-1: IMPROVED*",
        ]
    )
    live = comparison(project.path / "out/results/mednli/candidate.json", "accuracy")
    stored = comparison(project.path / "out/results/mednli/candidate-vs-base.json", "accuracy")
    assert live == stored  # the base model's stored scores give the live base's numbers


def test_a_baseline_holding_several_models_must_be_named_with_a_model(project: pytest.Pytester) -> None:
    write_models(project, base_wrong=set(), candidate_wrong=set())
    run(project, "-k", "mednli", "--clue-save-baseline", "b.json").assert_outcomes(passed=2)
    candidate_only(project, ["b.json"])
    result = run(project, "-k", "mednli")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*baseline */b.json holds the models base, candidate: name one as */b.json#MODEL*"])
    candidate_only(project, ["missing.json"])
    result = run(project, "-k", "mednli")
    result.stderr.fnmatch_lines(["*model 'candidate': baseline 'missing.json': no such file*--clue-save-baseline*"])


def test_bad_baseline_files_are_named_errors(tmp_path: Path) -> None:
    bad = tmp_path / "b.json"
    bad.write_text('{"kind": "clue-baseline", "format": 2, "entries": [{"task": "mednli"')
    with pytest.raises(ConfigError, match=r"b.json: invalid JSON: .* at line 1, column"):
        baseline.load(bad)
    bad.write_text(json.dumps({"results": []}))
    with pytest.raises(ConfigError, match="not a clue baseline"):
        baseline.load(bad)
    entry: dict[str, object] = {k: {} for k in ("protocol", "data", "decoding", "metrics")}
    sample = {"id": "ab", "scores": {"accuracy": "high"}}
    bad.write_text(json.dumps({"kind": "clue-baseline", "format": 2, "entries": [
        {"task": "mednli", "model": "base", **entry, "samples": [sample]}
    ]}))  # fmt: skip
    with pytest.raises(ConfigError, match="entry mednli/base, sample ab: score accuracy is not a number"):
        baseline.load(bad)


def test_identical_outputs_are_information_never_a_failure(project: pytest.Pytester) -> None:
    """Before: a candidate whose outputs equalled its base's on more than 95 % of samples failed ("IDENTICAL
    OUTPUTS … was the adapter applied?"), which failed a correct bf16 conversion and fine-tunes that copy the same
    few-shot answer. Identical outputs are now shown, per task, and never fail a release by themselves (the
    weights check, on next-token logits, catches an unapplied adapter: tests/run/test_verdicts.py)."""
    write_models(project, base_wrong=set(scored_indices()[:5]), candidate_wrong=set(scored_indices()[:5]))
    result = run(project, "-k", "mednli")
    result.assert_outcomes(passed=2, warnings=1)  # 50 equal answers: inconclusive at a 0.02 margin, a warning
    result.stdout.fnmatch_lines(["*note: outputs identical to the base on 50 of 50 samples*"])
    assert "IDENTICAL OUTPUTS" not in result.stdout.str()
    summary = (project.path / "out/summary.md").read_text()
    assert "- candidate on mednli: outputs identical to the base on 50 of 50 samples" in summary
    record = json.loads((project.path / "out/results/mednli/candidate.json").read_text())
    assert record["identical_outputs"] == {"n": 50, "of": 50} and record["weights_check"] == "not checked"
    # against a stored baseline the output hashes are compared, and shown the same way
    run(project, "-k", "mednli", "--clue-save-baseline", "b.json")
    candidate_only(project, ["b.json#base"], answers(set(scored_indices()[:5])))
    result = run(project, "-k", "mednli")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*note: outputs identical to the baseline on 50 of 50 samples*"])


def test_save_and_gate_on_the_embedded_default_never_loads_the_base(pytester: pytest.Pytester) -> None:
    """The embedded default (tiny random Llama models built offline): save a baseline, then gate the candidate
    against it with a matrix that has no base model: zero base loads, the verdicts and numbers of the live run."""
    for name in ("test_mednli.py", "test_medisumcode.py"):
        pytester.makepyfile(**{name[:-3]: (REPO / "benchmarks" / name).read_text()})
    (pytester.path / "fixtures").symlink_to(REPO / "fixtures")
    options = [
        "-W", "ignore::pytest.PytestAssertRewriteWarning", "-p", "no:cacheprovider",
        "--clue-data-dir", "fixtures/data", "--clue-reports-dir", "out", "--clue-cache-dir", str(REPO / ".clue-cache"),
        "--clue-limit", "6",
    ]  # fmt: skip
    first = pytester.runpytest_subprocess(
        *options, "--clue-matrix", "fixtures/models.toml", "--clue-save-baseline", "main.json"
    )
    assert first.ret in (0, 1), first.stdout.str()
    (pytester.path / "candidate.toml").write_text(
        (REPO / "fixtures/models.toml").read_text().split("[models.base]")[0]
        + '[models.candidate]\nbuild = "tiny-llama"\nseed = 1\nbaseline = "main.json#base"\n'
    )
    second = pytester.runpytest_subprocess(*options, "--clue-matrix", "candidate.toml")
    assert second.ret in (0, 1), second.stdout.str()
    stats = json.loads((pytester.path / "out/clue-session.json").read_text())
    assert "base" not in stats["loads"] and "base" not in stats["generated"]
    for task in ("mednli", "medisumcode"):
        live = json.loads((pytester.path / f"out/results/{task}/candidate.json").read_text())
        stored = json.loads((pytester.path / f"out/results/{task}/candidate-vs-base.json").read_text())
        assert stored["verdict"] == live["verdict"]
        for metric, entry in live["metrics"].items():
            assert stored["metrics"][metric]["comparison"] == entry["comparison"], (task, metric)
