"""The HTML report's section on instruction wordings (--clue-phrasings N): per case, a plot of model minus base on
the primary metric under each wording and their per-sample mean, with intervals coloured by verdict, and a table of
the same numbers with each wording's text hash; the verdict across wordings beside the reference wording's alone,
and each model's sensitivity to the wording."""

from __future__ import annotations

from html import escape

from clue.records import CaseRecord, WordingEntry

STROKES = {"regressed": "#c0392b", "inconclusive": "#b7950b", "non-inferior": "#4a7c3a", "improved": "#1e6b1e"}


def phrasings_section(records: list[CaseRecord]) -> str:
    """Every case run under several wordings, one plot and table each; empty when none was."""
    cases = [r for r in records if r.phrasings_summary is not None and r.phrasings]
    if not cases:
        return ""
    intro = (
        "<h2>Wordings</h2><p>Each case was also run under other wordings of its task's instruction (the few-shot "
        "examples and the inputs unchanged). The case's verdict is the family's: it regressed when any wording, or "
        "the per-sample mean over the wordings (<i>combined</i>), regressed; it improved only when the mean improved "
        "and no wording regressed (Holm's procedure over the family). The spread is the highest minus the lowest "
        "mean over the wordings: a candidate more sensitive than its base changes more with the wording.</p>"
    )
    return intro + "".join(_case(r) for r in cases)


def _case(record: CaseRecord) -> str:
    summary = record.phrasings_summary
    assert summary is not None
    title = (
        f"{record.task} · {record.row} vs {record.base_model}: {summary.verdict.upper()} across "
        f"{len(record.phrasings) - 1} wordings (reference wording alone: {summary.reference_verdict.upper()})"
    )
    sensitivity = (
        f"Spread of {summary.metric}: model {summary.model_spread:.4f}, base {summary.base_spread:.4f}, difference "
        f"{summary.model_spread - summary.base_spread:+.4f} [{summary.spread_ci_low:+.4f}, "
        f"{summary.spread_ci_high:+.4f}]: {summary.finding}."
    )
    rows = "".join(
        f'<tr><td class="left">{escape(e.wording)}</td><td><code>{escape(e.digest or "")}</code></td>'
        f"<td>{e.comparison.n}</td><td>{e.comparison.model_mean:.4f}</td><td>{e.comparison.base_mean:.4f}</td>"
        f"<td>{e.comparison.delta:+.4f} [{e.comparison.ci_low:+.4f}, {e.comparison.ci_high:+.4f}]</td>"
        f"<td>{escape(e.comparison.verdict)}</td></tr>"
        for e in record.phrasings
    )
    table = (
        '<table class="detail wordings"><tr><th>wording</th><th>text hash</th><th>n</th><th>model</th><th>base</th>'
        f"<th>Δ [CI]</th><th>verdict</th></tr>{rows}</table>"
    )
    return f"<h3>{escape(title)}</h3>{plot(record.phrasings, summary.metric)}<p>{escape(sensitivity)}</p>{table}"


def plot(entries: tuple[WordingEntry, ...], metric: str) -> str:
    """Δ per wording with its interval, as inline SVG; the margin dashed, 0 solid."""
    margin = entries[0].comparison.margin
    lows = [e.comparison.ci_low for e in entries] + [-margin, 0.0]
    highs = [e.comparison.ci_high for e in entries] + [0.0]
    lo, hi = min(lows), max(highs)
    pad = max((hi - lo) * 0.08, 0.01)
    lo, hi = lo - pad, hi + pad
    left, width, row_h, top = 140, 480, 24, 24
    height = top + row_h * len(entries) + 34

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo) * width

    out = [
        f'<svg class="wordings-plot" xmlns="http://www.w3.org/2000/svg" width="{left + width + 30}" '
        f'height="{height}" role="img" aria-label="Difference to the base per wording">',
        f'<line x1="{x(0):.1f}" y1="{top - 8}" x2="{x(0):.1f}" y2="{height - 26}" stroke="#333"/>',
        f'<line x1="{x(-margin):.1f}" y1="{top - 8}" x2="{x(-margin):.1f}" y2="{height - 26}" stroke="#c0392b" '
        f'stroke-dasharray="4 3"/>',
    ]
    for i, e in enumerate(entries):
        c, y = e.comparison, top + row_h * i + row_h / 2
        color = STROKES.get(c.verdict, "#555")
        out.append(f'<text x="{left - 8}" y="{y + 4:.1f}" font-size="12" text-anchor="end">{escape(e.wording)}</text>')
        out.append(
            f'<line x1="{x(c.ci_low):.1f}" y1="{y:.1f}" x2="{x(c.ci_high):.1f}" y2="{y:.1f}" stroke="{color}" '
            f'stroke-width="3"/><circle data-verdict="{c.verdict}" cx="{x(c.delta):.1f}" cy="{y:.1f}" r="5" '
            f'fill="{color}"><title>{escape(e.wording)}: Δ {c.delta:+.4f} [{c.ci_low:+.4f}, {c.ci_high:+.4f}] '
            f"{c.verdict}</title></circle>"
        )
    out.append(
        f'<text x="{left + width / 2}" y="{height - 6}" font-size="12" text-anchor="middle">'
        f"{escape(metric)}: model − base (dashed: −margin {margin:g})</text></svg>"
    )
    return "".join(out)
