"""The report model and its HTML/Markdown renderings, from results recorded through the real scoring and gate
code (tests/helpers/report_data.py): content, PHI-safe defaults, flips, degenerate-output flags."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from clue.report.flags import is_repetition_loop
from clue.report.html import render_html
from clue.report.markdown import render_markdown
from clue.util.pseudonyms import hash_id
from tests.helpers import FIXTURE_DATA
from tests.helpers.hostile import names
from tests.helpers.report_data import recorded_results, report_of


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    return recorded_results()


def test_report_model_puts_tasks_in_paper_order_and_cells_carry_verdicts(records: list[dict[str, Any]]) -> None:
    report = report_of(records)
    assert [t.name for t in report.tasks] == ["mednli", "meqsum", "medisumcode"]  # Level 1, then Level 2
    assert report.models == ["base", "candidate"]
    assert report.cells[("candidate", "mednli")].verdict == "regressed"
    assert report.cells[("candidate", "medisumcode")].verdict == "improved"
    assert report.cells[("candidate", "meqsum")].verdict == "inconclusive"
    assert report.cells[("base", "mednli")].verdict == "reference"
    avg = report.averages("candidate")
    mednli, meqsum, code = (report.cells[("candidate", t)].value for t in ("mednli", "meqsum", "medisumcode"))
    assert avg["Level 1"] == pytest.approx((mednli + meqsum) / 2) and avg["Level 2"] == pytest.approx(code)
    assert avg["All"] == pytest.approx((mednli + meqsum + code) / 3)


def test_flips_pair_samples_and_show_what_went_wrong(records: list[dict[str, Any]]) -> None:
    report = report_of(records)
    lost = report.lost[("candidate", "mednli")]
    assert len(lost) == 18 and report.gained[("candidate", "mednli")] == []
    assert all(f.base_score == 1.0 and f.model_score == 0.0 for f in lost)
    assert lost[0].model["detail"]["parsed"] != lost[0].model["detail"]["gold"]
    gained = report.gained[("candidate", "medisumcode")]
    assert gained and gained[0].base["detail"]["extra_codes"] == ["Q9999"]
    assert "invalid_codes" in gained[0].base["flags"]  # Q99.99 is not an ICD-10-CM code


def test_html_shows_every_task_model_verdict_plot_and_flips(records: list[dict[str, Any]]) -> None:
    html = render_html(report_of(records))
    assert 'id="headline">Failing: candidate on mednli: regressed (accuracy Δ -0.600)' in html
    for task in ("MedNLI", "MeQSum", "MeDiSumCode"):
        assert task in html
    assert len(re.findall(r'<td class="cell verdict-', html)) == 6
    assert html.count('<circle class="point"') == 3
    assert 'data-verdict="regressed"' in html and "−margin 0.02" in html
    assert "18 lost, 0 gained on accuracy" in html
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")  # offline


def test_credentialed_samples_are_hashed_and_textless_by_default(records: list[dict[str, Any]]) -> None:
    nli = next(r for r in records if r["task"] == "mednli" and r["model"] == "candidate")
    raw_ids = [
        json.loads(line)["pairID"] for line in (FIXTURE_DATA / "mednli/mli_test_v1.jsonl").read_text().splitlines()
    ]
    text = json.dumps(records) + render_html(report_of(records))
    assert not any(names(text, raw) for raw in raw_ids)
    assert all(s["id"] == hash_id("mednli", s["id"]) or len(s["id"]) == 16 for s in nli["samples"])
    assert not any("output" in s or "input" in s for s in nli["samples"])
    assert "Chest x-ray showed" not in text  # a fixture sentence
    shown = recorded_results(show_samples=True)
    shown_text = json.dumps(shown)
    assert any(raw in shown_text for raw in raw_ids) and "Chest x-ray showed" in shown_text


def test_public_data_sets_are_shown_without_the_option(records: list[dict[str, Any]]) -> None:
    meqsum = next(r for r in records if r["task"] == "meqsum" and r["model"] == "candidate")
    assert meqsum["samples_shown"] and "output" in meqsum["samples"][0] and meqsum["samples"][0]["id"] == "q0"


def test_markdown_summary(records: list[dict[str, Any]]) -> None:
    md = render_markdown(report_of(records))
    assert md.startswith("## clue results")
    assert "| candidate | 🔴 0.400 (Δ -0.600, regressed)" in md
    assert "**Failing:**\n- candidate on mednli: regressed (accuracy Δ -0.600)" in md


@pytest.mark.parametrize(
    ("text", "loop"),
    [
        ("\n" * 40, False),  # whitespace only is "empty", not a loop
        ("I25.10, " * 30, True),
        ("the patient " * 20, True),
        ("ICD-10 Codes: I25.10, E11.65, N18.30", False),
        ("Patient with diabetes, hypertension and chronic kidney disease stage 3 was admitted.", False),
    ],
)
def test_repetition_loop_detection(text: str, loop: bool) -> None:
    assert is_repetition_loop(text) is loop


def test_render_from_a_recorded_results_file(tmp_path: Path, records: list[dict[str, Any]]) -> None:
    results = tmp_path / "clue-results.json"
    results.write_text(json.dumps({"schema": 1, "results": records}))
    done = subprocess.run([sys.executable, "-m", "clue.report", str(results)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "index.html").read_text().count('<circle class="point"') == 3
    assert "regressed" in (tmp_path / "summary.md").read_text()
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    done = subprocess.run([sys.executable, "-m", "clue.report", str(bad)], capture_output=True, text=True)
    assert done.returncode == 2 and "not a clue results file" in done.stderr


def test_mde_margin_and_adjusted_level_are_in_the_json_the_report_and_the_summary(
    records: list[dict[str, Any]],
) -> None:
    """Every comparison carries its MDE; a comparison whose MDE exceeds its margin is flagged in the HTML and
    listed in summary.md; gated metrics tested in a family show their Holm level; non-gated ones are information."""
    comparisons = [e["comparison"] for r in records for e in r["metrics"].values() if e.get("comparison")]
    assert comparisons and all(c["mde"] >= 0 and "regression_alpha" in c and "units" in c for c in comparisons)
    report = report_of(records)
    html = render_html(report)
    assert "MDE (80 % power)" in html and "(information, not gated)" in html
    underpowered = [c for cells in report.details.values() for c in cells if c.underpowered]
    assert underpowered, "the small fixture sets must produce at least one underpowered comparison"
    assert "⚠ &gt; margin" in html and "cannot show non-inferiority at this margin" in html
    md = render_markdown(report)
    assert "Too few samples for the margin" in md
    holm = [c for c in comparisons if c["regression_alpha"] < c["alpha"]]
    assert holm and any(f"(level {c['regression_alpha']:.3g})" in html for c in holm)


def test_flips_are_counted_in_full_and_shown_up_to_the_limit(records: list[dict[str, Any]]) -> None:
    """ "MedNLI · 20 lost" while the gate counted 30: the count was the display limit."""
    html = render_html(report_of(records, flip_limit=5))
    assert "18 lost, 0 gained on accuracy" in html
    assert "base better than candidate (showing 5 of 18)" in html


def test_summary_names_not_run_cases_strict_failures_and_says_when_nothing_was_gated(
    records: list[dict[str, Any]],
) -> None:
    not_run = [
        {"task": "medisumqa", "model": "candidate", "status": "skipped", "reason": "MeDiSumQA: no data"},
        {"task": "problem_summary", "model": "candidate", "status": "error", "reason": "truncated file"},
    ]
    md = render_markdown(report_of(records, not_run=not_run, strict=True))
    assert "candidate on problem_summary: error (truncated file)" in md
    assert "candidate on medisumqa: skipped (MeDiSumQA: no data)" in md
    assert "inconclusive (fails under --clue-strict)" in md
    html = render_html(report_of(records, not_run=not_run))
    assert "<h2>Not run</h2>" in html and "truncated file" in html
    references_only = [r for r in records if r["model"] == "base"]
    nothing = render_markdown(report_of(references_only, not_run=not_run[:1]))
    assert "**Nothing was gated" in nothing and "No model regressed" not in nothing


def test_junit_conform_moves_test_properties_to_the_suite_and_drops_xunit1_attributes(tmp_path: Path) -> None:
    """junit-10.xsd allows neither <properties> in a <testcase> (record_property) nor xunit1's file/line."""
    from clue.report.junit import conform

    path = tmp_path / "junit.xml"
    path.write_text(
        '<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="0" failures="1" '
        'skipped="0" tests="1" time="0.1"><testcase classname="test_x" name="test_a" file="test_x.py" line="3" '
        'time="0.01"><properties><property name="own" value="1"/></properties><failure message="Failed: REGRESSED '
        'mednli: model">text</failure></testcase></testsuite></testsuites>'
    )
    conform(path)
    suite = next(ET.parse(path).getroot().iter("testsuite"))
    case = suite.find("testcase")
    assert case is not None and set(case.attrib) == {"classname", "name", "time"} and case.find("properties") is None
    assert [(p.get("name"), p.get("value")) for p in suite.iter("property")] == [("test_x.test_a.own", "1")]
    failure = case.find("failure")
    assert failure is not None and failure.get("message") == "REGRESSED mednli: model"
