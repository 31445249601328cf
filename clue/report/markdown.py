"""`reports/summary.md`: the summary table in Markdown, for a CI job summary or a pull-request comment.

When `GITHUB_STEP_SUMMARY` is set (GitHub Actions), the same text is appended to that file.
"""

from __future__ import annotations

from clue.records import CaseRecord
from clue.report.model import Report, sequential_text

ICONS = {"regressed": "🔴", "inconclusive": "🟡", "non-inferior": "🟢", "improved": "🟩", "reference": "⚪"}


def render_markdown(report: Report) -> str:
    header = "| Model | " + " | ".join(f"{t.title} ({t.primary})" for t in report.tasks) + " |"
    lines = ["## clue results", "", header, "|" + "---|" * (len(report.tasks) + 1)]
    for model in report.models:
        cells = []
        for task in report.tasks:
            cell = report.cells.get((model, task.name))
            if cell is None:
                cells.append("–")
            elif cell.delta is None:
                cells.append(f"{ICONS['reference']} {cell.value:.3f}")
            else:
                cells.append(f"{ICONS[cell.verdict]} {cell.value:.3f} (Δ {cell.delta:+.3f}, {cell.verdict})")
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    state, lines_out = report.headline()
    lines.append("")
    if state == "failing":
        lines.append("**Failing:**")
        lines += [f"- {line}" for line in lines_out]
    else:
        lines.append(f"**{lines_out[0]}**" if state == "nothing gated" else lines_out[0])
        lines += [f"- {line}" for line in lines_out[1:]]
    small = [c for c in report.comparisons() if c.underpowered]
    if small:
        lines.append(
            "\n**Too few samples for the margin** (MDE at 80 % power > margin: non-inferiority cannot be shown): "
            + "; ".join(f"{c.model} on {c.task} ({c.metric}: MDE {c.mde:.3f} > {c.margin:g}, n = {c.n})" for c in small)
        )
    if report.sequential:
        lines.append(
            "\n**Sequential gate** (--clue-sequential): "
            + "; ".join(f"{row} on {task}: {sequential_text(stop)}" for (row, task), stop in report.sequential.items())
        )
    if report.worded:
        lines.append("\n**Across instruction wordings** (--clue-phrasings):")
        lines += [_worded_line(r) for r in report.worded]
    if report.diagnostics:
        lines.append("\n**Diagnostics** (information, not verdicts):")
        lines += [f"- {row} on {task}: {'; '.join(notes)}" for (row, task), notes in report.diagnostics.items()]
    lines.append(f"\nCI: {report.confidence:.0%}. Details: index.html, next to this file.")
    return "\n".join(lines) + "\n"


def _worded_line(record: CaseRecord) -> str:
    summary = record.phrasings_summary
    assert summary is not None
    each = ", ".join(f"{e.wording} {e.comparison.delta:+.4f} {e.comparison.verdict}" for e in record.phrasings)
    sensitive = "" if summary.finding == "no difference shown" else f"; {summary.finding} to the wording than its base"
    return (
        f"- {record.row} on {record.task}: {summary.verdict.upper()} across {len(record.phrasings) - 1} wordings "
        f"(reference wording alone: {summary.reference_verdict.upper()}); {summary.metric} model − base: {each}"
        + sensitive
    )
