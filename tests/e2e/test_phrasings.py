"""--clue-phrasings end to end on recorded outputs (issue 44): a candidate right under the reference wording and
wrong under the others (an adapter trained on the benchmark's own prompt) is IMPROVED under the reference wording
alone and REGRESSED across wordings, with each wording's verdict in the results JSON, JUnit and the terminal; a
stored baseline carries the base's per-wording scores."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from clue.tasks import get_task
from clue.tasks.wordings import Wording, task_wordings
from tests.helpers import write_replay_matrix
from tests.helpers.replay_project import answers, code_answers, make_project, run

pytest_plugins = ["pytester"]

WORDINGS = [w.id for w in task_wordings(get_task("mednli"))]


def worded(wrong: dict[str, set[int]]) -> list[dict[str, str]]:
    """MedNLI outputs under each of the task's wordings: right except on the records `wrong` names per wording."""
    out = []
    for wording in WORDINGS:
        for record in answers(wrong.get(wording, set())):
            out.append({**record, "wording": wording} if wording != "reference" else record)
    return out


def prompt_overfit(p: pytest.Pytester) -> None:
    """Base: wrong on 20 of 50 under every wording. Candidate: right on all 50 under the reference wording, wrong on
    40 under every other."""
    base = {w: set(range(20)) for w in WORDINGS}
    candidate = {w: set() if w == "reference" else set(range(40)) for w in WORDINGS}
    outputs = {"base": worded(base) + code_answers(), "candidate": worded(candidate) + code_answers()}
    write_replay_matrix(p.path, outputs)


def results(p: pytest.Pytester) -> dict[str, dict[str, Any]]:
    merged = json.loads((p.path / "out" / "clue-results.json").read_text())["results"]
    return {r["case"]: r for r in merged if r["task"] == "mednli"}


def test_a_prompt_overfit_candidate_is_improved_alone_and_regressed_across_wordings(pytester: pytest.Pytester) -> None:
    p = make_project(pytester)
    prompt_overfit(p)
    alone = run(p, "-k", "mednli")
    assert results(p)["candidate"]["verdict"] == "improved", alone.stdout.str()[-3000:]
    assert "phrasings" not in results(p)["candidate"]

    across = run(p, "-k", "mednli", "--clue-phrasings", "3")
    text = across.stdout.str()
    record = results(p)["candidate"]
    assert record["verdict"] == "regressed", text[-3000:]
    entries = {e["wording"]: e for e in record["phrasings"]}
    assert list(entries) == ["reference", "clue-1", "clue-2", "combined"]
    assert entries["reference"]["verdict"] == "improved" and entries["reference"]["delta"] > 0.3
    assert entries["clue-1"]["verdict"] == entries["clue-2"]["verdict"] == "regressed"
    assert entries["clue-1"]["delta"] < -0.3 and entries["clue-1"]["n"] == 50
    assert entries["clue-1"]["digest"] == task_wordings(get_task("mednli"))[1].digest
    summary = record["phrasings_summary"]
    assert summary["reference_verdict"] == "improved" and summary["verdict"] == "regressed"
    assert summary["sensitivity"]["finding"] == "more sensitive"
    assert "across 3 wordings: REGRESSED (reference wording alone: IMPROVED)" in text
    across.assert_outcomes(passed=1, failed=1)  # the base is the reference case; the candidate fails

    html = (p.path / "out" / "index.html").read_text()
    assert html.count('class="wordings-plot"') == 1 and html.count('data-verdict="regressed"') >= 2
    assert "REGRESSED across 3 wordings (reference wording alone: IMPROVED)" in html
    summary_md = (p.path / "out" / "summary.md").read_text()
    assert "candidate on mednli: REGRESSED across 3 wordings (reference wording alone: IMPROVED)" in summary_md
    assert "more sensitive to the wording than its base" in summary_md
    suite = ET.parse(p.path / "out" / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    props = {e.get("name"): e.get("value") for e in suite.iter("property")}
    assert props["clue.mednli[candidate].phrasings.verdict"] == "regressed"
    assert props["clue.mednli[candidate].phrasings.reference_verdict"] == "improved"
    assert props["clue.mednli[candidate].phrasings.clue-2.verdict"] == "regressed"


def test_a_candidate_trained_across_wordings_is_improved_across_them(pytester: pytest.Pytester) -> None:
    p = make_project(pytester)
    base = {w: set(range(20)) for w in WORDINGS}
    write_replay_matrix(p.path, {"base": worded(base) + code_answers(), "candidate": worded({}) + code_answers()})
    done = run(p, "-k", "mednli", "--clue-phrasings", "3")
    record = results(p)["candidate"]
    assert record["verdict"] == "improved", done.stdout.str()[-3000:]
    assert record["phrasings_summary"]["sensitivity"]["finding"] == "no difference shown"


def test_a_stored_baseline_carries_the_base_s_scores_under_each_wording(pytester: pytest.Pytester) -> None:
    p = make_project(pytester)
    prompt_overfit(p)
    live = run(p, "-k", "mednli", "--clue-phrasings", "3")
    expected = results(p)["candidate"]
    p.path.joinpath("base.toml").write_text('[models.base]\npath = "base.jsonl"\nbackend = "replay"\n')
    save = ["--clue-matrix", "base.toml", "--clue-save-baseline", "b.json"]
    saved = run(p, "-k", "mednli", "--clue-phrasings", "3", *save)
    assert saved.ret == 0, saved.stdout.str()[-3000:]
    stored = json.loads((p.path / "b.json").read_text())["entries"][0]
    assert [x["wording"] for x in stored["phrasings"]] == ["clue-1", "clue-2"]
    p.path.joinpath("cand.toml").write_text('[models.candidate]\npath = "candidate.jsonl"\nbackend = "replay"\n')
    gated = run(p, "-k", "mednli", "--clue-phrasings", "3", "--clue-matrix", "cand.toml", "--clue-baseline", "b.json")
    record = results(p)["candidate-vs-base"]
    assert record["verdict"] == "regressed", gated.stdout.str()[-3000:]
    assert [e["delta"] for e in record["phrasings"]] == [e["delta"] for e in expected["phrasings"]]
    more = run(p, "-k", "mednli", "--clue-phrasings", "4", "--clue-matrix", "cand.toml", "--clue-baseline", "b.json")
    assert "holds no scores under the wording 'clue-3'" in more.stdout.str(), live.stdout.str()[-2000:]


def test_sequential_looks_judge_the_reference_wording_and_the_family_is_tested_where_it_stopped(
    pytester: pytest.Pytester,
) -> None:
    """Under --clue-sequential the looks judge the reference wording alone; the alternatives are generated for the
    samples generated up to the stop and the family is tested on the stopped case's samples at its look's level."""
    p = make_project(pytester)
    prompt_overfit(p)
    done = run(p, "-k", "mednli", "--clue-phrasings", "3", "--clue-sequential", "--clue-sequential-look-every", "20")
    record = results(p)["candidate"]
    stop = record["sequential"]
    assert stop is not None and stop["samples_used"] < 50, done.stdout.str()[-3000:]
    assert record["verdict"] == "regressed"
    assert {e["n"] for e in record["phrasings"]} == {stop["samples_used"]}
    regression_levels = [e["comparison"]["regression_alpha"] for e in record["phrasings"]]
    assert max(regression_levels) <= stop["nominal_alpha"]


def test_your_wordings_come_first_and_every_problem_is_named(pytester: pytest.Pytester) -> None:
    """--clue-wordings FILE: the team's wordings are the first alternatives (replayed by their id); a file that
    cannot be used is one usage error at start-up naming it; more wordings than a task has is the case's error
    saying how many it has."""
    p = make_project(pytester)
    text = "Two chart statements. Reply ENTAILMENT, NEUTRAL or CONTRADICTION and nothing else."
    ward = Wording("ward", text).digest  # a recorded output names a team's wording by its text's hash
    base = {w: set(range(20)) for w in [*WORDINGS, ward]}
    candidate = {w: set() if w == "reference" else set(range(40)) for w in [*WORDINGS, ward]}
    rows = {name: [r for w in [*WORDINGS, ward] for r in _worded_rows(wrong[w], w)] for name, wrong in
            (("base", base), ("candidate", candidate))}  # fmt: skip
    write_replay_matrix(p.path, {k: v + code_answers() for k, v in rows.items()})
    p.path.joinpath("wordings.toml").write_text(f'[mednli]\nward = "{text}"\n')
    run(p, "-k", "mednli", "--clue-phrasings", "2", "--clue-wordings", "wordings.toml")
    entries = results(p)["candidate"]["phrasings"]
    assert [e["wording"] for e in entries] == ["reference", "ward", "combined"]
    assert entries[1]["source"].endswith("wordings.toml") and entries[1]["verdict"] == "regressed"

    p.path.joinpath("bad.toml").write_text('[mednli]\nward = "Answer yes or no."\n')
    bad = run(p, "-k", "mednli", "--clue-phrasings", "2", "--clue-wordings", "bad.toml")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    assert "bad.toml: [mednli] ward: the wording does not name 'ENTAILMENT'" in bad.stderr.str()
    assert "Traceback" not in bad.stderr.str() + bad.stdout.str()

    many = run(p, "-k", "mednli", "--clue-phrasings", "7")
    assert "--clue-phrasings 7: mednli has 5 wordings" in many.stdout.str(), many.stdout.str()[-2000:]
    assert many.ret == pytest.ExitCode.TESTS_FAILED


def _worded_rows(wrong: set[int], wording: str) -> list[dict[str, str]]:
    return [{**r, "wording": wording} if wording != "reference" else r for r in answers(wrong)]


def test_evaluate_takes_phrasings(tmp_path: Path) -> None:
    import clue

    class Project:
        path = tmp_path

    base = {w: set(range(20)) for w in WORDINGS}
    candidate = {w: set() if w == "reference" else set(range(40)) for w in WORDINGS}
    write_replay_matrix(tmp_path, {"base": worded(base), "candidate": worded(candidate)})
    data = tmp_path / "data" / "mednli"
    data.mkdir(parents=True)
    from tests.helpers.replay_project import mednli_records

    data.joinpath("mli_test_v1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in mednli_records()))
    done = clue.evaluate(
        ["mednli"], matrix=tmp_path / "models.toml", data_dir=tmp_path / "data", phrasings=3,
        reports_dir=tmp_path / "out", cache_dir=tmp_path / "cache",
    )  # fmt: skip
    record = next(r.record for r in done.results if r.case == "candidate")
    assert record.verdict == "regressed" and record.phrasings_summary is not None
    assert record.phrasings_summary.reference_verdict == "improved"
    assert Project.path == tmp_path
