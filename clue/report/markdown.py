"""`reports/summary.md`: the summary table in Markdown, for a CI job summary or a pull-request comment.

When `GITHUB_STEP_SUMMARY` is set (GitHub Actions), the same text is appended to that file.
"""

from __future__ import annotations

from clue.report.model import Report

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
    regressed = [c for c in report.comparisons() if c.verdict == "regressed"]
    lines.append("")
    if regressed:
        lines.append(
            "**Regressed:** "
            + "; ".join(
                f"{c.model} on {c.task} ({c.metric} Δ {c.delta:+.3f}, CI [{c.delta_ci[0]:+.3f}, {c.delta_ci[1]:+.3f}])"
                for c in regressed
                if c.delta is not None and c.delta_ci is not None
            )
        )
    else:
        lines.append("No model regressed against its base model.")
    small = [c for c in report.comparisons() if c.underpowered]
    if small:
        lines.append(
            "\n**Too few samples for the margin** (MDE at 80 % power > margin: non-inferiority cannot be shown): "
            + "; ".join(f"{c.model} on {c.task} ({c.metric}: MDE {c.mde:.3f} > {c.margin:g}, n = {c.n})" for c in small)
        )
    lines.append(f"\nCI: {report.confidence:.0%}. Details: reports/index.html")
    return "\n".join(lines) + "\n"
