"""Write index.html and summary.md from a run's records (the merged clue-results.json)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from clue.records import RunRecord
from clue.report.html import render_html
from clue.report.markdown import render_markdown
from clue.report.model import build_report
from clue.util.files import SHARED, atomic_write


def write_reports(reports_dir: Path, run: RunRecord) -> tuple[Path, Path]:
    """index.html and summary.md (and GitHub's step summary), each written; their paths."""
    writers = report_writers(reports_dir, run)
    for _, write in writers:
        write()
    return writers[0][0], writers[1][0]


def report_writers(reports_dir: Path, run: RunRecord) -> list[tuple[Path, Callable[[], object]]]:
    """Each report's path and the call that writes it (index.html, summary.md, and GitHub's step summary when
    GITHUB_STEP_SUMMARY is set), each on its own: one that cannot be written does not stop the others."""
    report = build_report(run)
    html, markdown = render_html(report), render_markdown(report)

    def written(name: str, text: str) -> tuple[Path, Callable[[], object]]:
        path = reports_dir / name
        return path, lambda: atomic_write(path, text.encode(), SHARED)

    writers = [written("index.html", html), written("summary.md", markdown)]
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        writers.append((Path(step_summary), lambda: _append(Path(step_summary), markdown)))
    return writers


def _append(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)
