"""Write index.html and summary.md from a run's records (the merged clue-results.json)."""

from __future__ import annotations

import os
from pathlib import Path

from clue.records import RunRecord
from clue.report.html import render_html
from clue.report.markdown import render_markdown
from clue.report.model import build_report
from clue.util.files import SHARED, atomic_write


def write_reports(reports_dir: Path, run: RunRecord) -> tuple[Path, Path]:
    report = build_report(run)
    reports_dir.mkdir(parents=True, exist_ok=True)
    html_path, md_path = reports_dir / "index.html", reports_dir / "summary.md"
    for path, text in ((html_path, render_html(report)), (md_path, render_markdown(report))):
        atomic_write(path, text.encode(), SHARED)
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as f:
            f.write(md_path.read_text(encoding="utf-8"))
    return html_path, md_path
