"""`reports/index.html`: one self-contained file (inline CSS and SVG, no scripts, no network) that tells a reviewer
in seconds which model regressed on which task, and why."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from html import escape
from typing import Any

from clue.records import ContaminationRecord
from clue.report.model import VERDICTS, Cell, Flip, Report, sequential_text
from clue.report.wordings import phrasings_section

COLORS = {
    "regressed": "#f4c7c3",
    "inconclusive": "#fce8b2",
    "non-inferior": "#d9ead3",
    "improved": "#93c47d",
    "reference": "#eeeeee",
}
MARKS = {"regressed": "▼", "inconclusive": "?", "non-inferior": "=", "improved": "▲", "reference": ""}
STROKES = {"regressed": "#c0392b", "inconclusive": "#b7950b", "non-inferior": "#4a7c3a", "improved": "#1e6b1e"}

CSS = """
.warn{color:#a15c00;font-weight:600}
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{margin-bottom:4px} h2{margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0} th,td{border:1px solid #ccc;padding:6px 8px;text-align:center}
th{background:#f5f5f5} td.model{text-align:left;font-weight:600}
.cell .v{font-size:1.1em;font-weight:600} .cell .ci,.cell .d{font-size:.8em;color:#333;display:block}
.legend span{display:inline-block;padding:2px 8px;margin-right:6px;border:1px solid #bbb}
.headline{font-size:1.1em;margin:12px 0;padding:10px;border-left:6px solid #c0392b;background:#fbeeee}
.headline.ok{border-color:#4a7c3a;background:#eef6ec}
.flags{color:#8a4b08;font-size:.85em} pre{white-space:pre-wrap;max-height:12em;overflow:auto;background:#fafafa;
border:1px solid #eee;padding:4px;margin:2px 0;text-align:left;font-size:.85em}
td.left{text-align:left} details{margin:6px 0} summary{cursor:pointer;font-weight:600}
"""


def _fmt(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "–"
    return f"{x:+.3f}" if signed else f"{x:.3f}"


def _cell_html(cell: Cell | None) -> str:
    if cell is None:
        return '<td class="cell missing">–</td>'
    parts = [
        f'<span class="v">{_fmt(cell.value)}</span>',
        f'<span class="ci">[{_fmt(cell.ci[0])}, {_fmt(cell.ci[1])}]</span>',
    ]
    if cell.delta is not None and cell.delta_ci is not None:
        parts.append(
            f'<span class="d">Δ {_fmt(cell.delta, True)} [{_fmt(cell.delta_ci[0], True)}, '
            f"{_fmt(cell.delta_ci[1], True)}] {MARKS[cell.verdict]} {escape(cell.verdict)}</span>"
        )
    title = f"{cell.metric}; vs {cell.base}" if cell.base else f"{cell.metric}; reference model"
    return (
        f'<td class="cell verdict-{cell.verdict}" data-verdict="{cell.verdict}" title="{escape(title)}" '
        f'style="background:{COLORS[cell.verdict]}">{"".join(parts)}</td>'
    )


def summary_table(report: Report) -> str:
    level_counts = [sum(t.level == lv for t in report.tasks) for lv in (1, 2)]
    head1 = ['<th rowspan="2">Model</th>']
    head1 += [f'<th colspan="{n}">Level {lv}</th>' for lv, n in zip((1, 2), level_counts, strict=True) if n]
    head1.append('<th colspan="3">Average of primary metrics</th>')
    head2 = [f"<th>{escape(t.title)}<br><small>{escape(t.primary)}</small></th>" for t in report.tasks]
    head2 += ["<th>Level 1</th><th>Level 2</th><th>All</th>"]
    rows = []
    for model in report.models:
        cells = [_cell_html(report.cells.get((model, t.name))) for t in report.tasks]
        avg = report.averages(model)
        cells += [f"<td>{_fmt(avg[k])}</td>" for k in ("Level 1", "Level 2", "All")]
        base = next((c.base for c in report.cells.values() if c.model == model and c.base), None)
        label = escape(model) + (f"<br><small>vs {escape(base)}</small>" if base else "<br><small>reference</small>")
        rows.append(f'<tr data-model="{escape(model)}"><td class="model">{label}</td>{"".join(cells)}</tr>')
    return (
        f'<table id="summary"><thead><tr>{"".join(head1)}</tr><tr>{"".join(head2)}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def delta_plot(report: Report) -> str:
    """Δ vs base per task and model with CI whiskers, as inline SVG (one row per comparison)."""
    cells = report.comparisons()
    if not cells:
        return "<p>No model has a base model: nothing to compare.</p>"
    assert all(c.delta_ci is not None for c in cells)
    lows = [c.delta_ci[0] for c in cells if c.delta_ci] + [-(c.margin or 0) for c in cells] + [0.0]
    highs = [c.delta_ci[1] for c in cells if c.delta_ci] + [0.0]
    lo, hi = min(lows), max(highs)
    pad = max((hi - lo) * 0.08, 0.01)
    lo, hi = lo - pad, hi + pad
    labels = [f"{c.task} · {c.model} ({c.metric})" for c in cells]
    # the labels are right-aligned against the plot: the margin grows with the longest (12 px text is at most
    # ~7.5 px a character in the sans-serif fonts browsers fall back to), so no label is clipped at the left edge
    left = max(260, round(7.5 * max(len(label) for label in labels)) + 16)
    width, row_h, top = 620, 26, 30
    height = top + row_h * len(cells) + 46

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo) * width

    out = [
        f'<svg id="delta-plot" xmlns="http://www.w3.org/2000/svg" width="{left + width + 40}" height="{height}" '
        f'role="img" aria-label="Difference to base model per task and model">',
        f'<line x1="{x(0):.1f}" y1="{top - 10}" x2="{x(0):.1f}" y2="{height - 30}" stroke="#333"/>',
        f'<text x="{x(0) + 3:.1f}" y="{top - 14}" font-size="11" text-anchor="start">0</text>',
    ]
    for tick in _ticks(lo, hi):
        out.append(
            f'<line x1="{x(tick):.1f}" y1="{top - 10}" x2="{x(tick):.1f}" y2="{height - 30}" stroke="#e5e5e5"/>'
            f'<text x="{x(tick):.1f}" y="{height - 18}" font-size="11" text-anchor="middle">{tick:+g}</text>'
        )
    for m in sorted({c.margin or 0 for c in cells}):
        if m:
            out.append(
                f'<line x1="{x(-m):.1f}" y1="{top - 10}" x2="{x(-m):.1f}" y2="{height - 30}" stroke="#c0392b" '
                f'stroke-dasharray="4 3"/><text x="{x(-m) - 3:.1f}" y="{top - 14}" font-size="11" '
                f'text-anchor="end" fill="#c0392b">−margin {m:g}</text>'
            )
    for i, (c, label) in enumerate(zip(cells, labels, strict=True)):
        y = top + row_h * i + row_h / 2
        assert c.delta_ci is not None and c.delta is not None
        color = STROKES.get(c.verdict, "#555")
        out.append(f'<text x="{left - 8}" y="{y + 4:.1f}" font-size="12" text-anchor="end">{escape(label)}</text>')
        out.append(
            f'<line class="whisker" x1="{x(c.delta_ci[0]):.1f}" y1="{y:.1f}" x2="{x(c.delta_ci[1]):.1f}" '
            f'y2="{y:.1f}" stroke="{color}" stroke-width="3"/>'
        )
        out.append(
            f'<circle class="point" data-verdict="{c.verdict}" cx="{x(c.delta):.1f}" cy="{y:.1f}" r="6" '
            f'fill="{color}"><title>{escape(label)}: Δ {c.delta:+.4f} [{c.delta_ci[0]:+.4f}, '
            f"{c.delta_ci[1]:+.4f}] {c.verdict}</title></circle>"
        )
    out.append(
        f'<text x="{left + width / 2}" y="{height - 2}" font-size="12" text-anchor="middle">'
        f"model − base ({report.confidence:.0%} CI)</text></svg>"
    )
    return "".join(out)


def _ticks(lo: float, hi: float) -> list[float]:
    """Round tick values (at most ~8) inside [lo, hi]."""
    span = hi - lo
    step = next(s for s in (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0) if span / s <= 8)
    first = math.ceil(lo / step) * step
    return [round(first + i * step, 6) for i in range(int((hi - first) / step) + 1) if abs(first + i * step) > 1e-9]


def _detail_table(cells: list[Cell]) -> str:
    rows = []
    for c in cells:
        delta_ci = "–" if c.delta_ci is None else f"[{_fmt(c.delta_ci[0], True)}, {_fmt(c.delta_ci[1], True)}]"
        p = "–" if c.p_regression is None else f"{c.p_regression:.3g}"
        if c.regression_alpha is not None and c.gated:
            p += f" (level {c.regression_alpha:.3g})"
        mde = "–" if c.mde is None else _fmt(c.mde)
        if c.underpowered:
            mde = (
                f'<span class="warn" title="this comparison cannot show non-inferiority at this margin with '
                f'n = {c.n}">{mde} ⚠ &gt; margin</span>'
            )
        name = escape(c.metric) + ("" if c.gated else " <small>(information, not gated)</small>")
        verdict = (
            f'<td style="background:{COLORS[c.verdict]}">{escape(c.verdict)}</td>'
            if c.gated or c.delta is None
            else f"<td><i>{escape(c.verdict)}</i></td>"
        )
        rows.append(
            f'<tr><td class="left">{name}</td><td class="left">{escape(c.model)}</td>'
            f"<td>{_fmt(c.value)}</td><td>[{_fmt(c.ci[0])}, {_fmt(c.ci[1])}]</td><td>{_fmt(c.base_value)}</td>"
            f"<td>{_fmt(c.delta, True)}</td><td>{delta_ci}</td><td>{_fmt(c.margin)}</td><td>{mde}</td>"
            f"<td>{p}</td>{verdict}</tr>"
        )
    return (
        '<table class="detail"><tr><th>metric</th><th>model</th><th>value</th><th>CI</th><th>base</th>'
        "<th>Δ</th><th>Δ CI</th><th>margin</th><th>MDE (80 % power)</th><th>p(regression)</th><th>verdict</th></tr>"
        f"{''.join(rows)}</table>"
    )


def _side(view: Mapping[str, Any]) -> str:
    parts = []
    if view.get("flags"):
        parts.append(f'<div class="flags">⚠ {escape(", ".join(view["flags"]))}</div>')
    detail = view.get("detail") or {}
    for key, value in detail.items():
        if value not in (None, [], ""):
            text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
            parts.append(f"<div><b>{escape(key.replace('_', ' '))}</b>: {escape(text)}</div>")
    if "output" in view:
        parts.append(f"<pre>{escape(str(view['output']))}</pre>")
    if view.get("error"):
        parts.append(f'<div class="flags">error: {escape(str(view["error"]))}</div>')
    return "".join(parts) or "<small>(no text shown: pass --clue-report-samples)</small>"


def _flip_rows(flips: list[Flip]) -> str:
    rows = []
    for f in flips:
        ref = f.model.get("reference") or f.base.get("reference")
        ref_html = f"<pre>{escape(json.dumps(ref) if not isinstance(ref, str) else ref)}</pre>" if ref else ""
        rows.append(
            f'<tr><td class="left"><code>{escape(f.sample_id)}</code>{ref_html}</td>'
            f'<td>{f.base_score:.3f}</td><td class="left">{_side(f.base)}</td>'
            f'<td>{f.model_score:.3f}</td><td class="left">{_side(f.model)}</td></tr>'
        )
    return "".join(rows)


def flips_section(report: Report) -> str:
    out = []
    for task in report.tasks:
        for model in report.models:
            key = (model, task.name)
            if key not in report.lost:
                continue
            lost, gained = report.lost[key], report.gained[key]
            total_lost, total_gained = report.flip_totals.get(key, (len(lost), len(gained)))
            base = report.cells[key].base
            head = (
                "<tr><th>sample</th><th>base score</th><th>base output</th><th>model score</th>"
                "<th>model output</th></tr>"
            )
            body = ""
            for title, flips, total in (
                (f"base better than {model}", lost, total_lost),
                (f"{model} better than base", gained, total_gained),
            ):
                shown = f"showing {len(flips)} of {total}" if len(flips) < total else f"{total}"
                body += f"<h4>{escape(title)} ({shown})</h4>" + (
                    f'<table class="flips">{head}{_flip_rows(flips)}</table>' if flips else "<p>none</p>"
                )
            counts = report.flag_counts.get(key, {})
            base_counts = report.flag_counts.get((base or "", task.name), {})
            flags = ", ".join(f"{k}: {v} (base {base_counts.get(k, 0)})" for k, v in sorted(counts.items())) or "none"
            out.append(
                f"<details{' open' if report.cells[key].verdict == 'regressed' else ''}>"
                f"<summary>{escape(task.title)} · {escape(model)} vs {escape(base or '')}: "
                f"{total_lost} lost, {total_gained} gained on {escape(task.primary)}</summary>"
                f'<p class="flags">degenerate outputs: {escape(flags)}</p>{body}</details>'
            )
    return "".join(out) or "<p>No comparisons.</p>"


def not_run_section(report: Report) -> str:
    """Selected cases of this run that produced no result, with the reason: a report never looks complete when
    a task was skipped for want of data or failed to run."""
    if not report.not_run:
        return ""
    rows = "".join(
        f'<tr><td class="left">{escape(n.task)}</td><td class="left">{escape(n.model)}</td>'
        f'<td>{escape(n.status)}</td><td class="left">{escape(n.reason)}</td></tr>'
        for n in report.not_run
    )
    return (
        "<h2>Not run</h2><p>Selected in this run, but no result: skipped (no data), an error, or stopped (the run "
        "was stopped before the case finished).</p>"
        f'<table class="detail"><tr><th>task</th><th>model</th><th>status</th><th>reason</th></tr>{rows}</table>'
    )


def provenance_section(report: Report) -> str:
    items = []
    for entry in report.provenance:
        items.append(
            f"<details><summary>{escape(entry['task'])} · {escape(entry['model'])} (n={entry['n']})</summary>"
            f"<pre>{escape(json.dumps(entry, indent=1, default=str))}</pre></details>"
        )
    return "".join(items)


def diagnostics_section(report: Report) -> str:
    """Per case: outputs identical to the base's, few-shot copies, floor or ceiling (information, not verdicts)."""
    if not report.diagnostics:
        return ""
    items = "".join(
        f"<li>{escape(row)} on {escape(task)}: {escape('; '.join(notes))}</li>"
        for (row, task), notes in report.diagnostics.items()
    )
    intro = "<h2>Diagnostics</h2><p>Information beside the verdicts; none of it fails a case.</p>"
    return f'{intro}<ul id="diagnostics">{items}</ul>'


def contamination_section(report: Report) -> str:
    """Each gated case's contamination diagnostic: a column of its status, the statistic with its interval, the
    gains it is the difference of and the items that look memorised; a note on what it means."""
    if not report.contamination:
        return ""
    rows = []
    for (row, task), c in sorted(report.contamination.items()):
        colour = {"flagged": COLORS["regressed"], "clear": COLORS["non-inferior"]}.get(c.status, "")
        status = (
            f'<td style="background:{colour}">{escape(c.status)}</td>' if colour else f"<td>{escape(c.status)}</td>"
        )
        if c.statistic is None or c.memorised is None:
            numbers = f'<td class="left" colspan="5">{escape(c.reason or "")}</td>'
        else:
            numbers = (
                f"<td>{_versus_reference(c)}</td>"
                f"<td>{_fmt(c.statistic, True)} [{_fmt(c.ci_low, True)}, {_fmt(c.ci_high, True)}]</td>"
                f"<td>{_fmt(c.exact_gain, True)}</td><td>{_fmt(c.neighbour_gain, True)}</td>"
                f"<td>{c.memorised.n} of {c.memorised.of}</td>"
            )
        rows.append(
            f'<tr><td class="left">{escape(row)}</td><td class="left">{escape(task)}</td>{status}{numbers}'
            f"<td>{escape(c.mode)}</td></tr>"
        )
    return (
        "<h2>Contamination</h2><p>Is the gain memorised test items? For each item, the model's gain over its "
        "reference in log-probability per token of the exact reference answer, minus its gain on perturbed "
        "neighbours of that answer (content words replaced by others of the task's answers). Legitimate domain "
        "adaptation raises both alike; training on the items raises the exact answers above their neighbours. A "
        "case is flagged when the interval's lower end exceeds the margin; an item looks memorised above the item "
        "threshold. A model that learnt the task also prefers right answers to wrong ones: given items it cannot "
        "have trained on (<code>--clue-contamination-reference</code>), the flag is instead whether d on the test "
        "items exceeds d on those (the interval's lower end above 0). It cannot see items the base model had "
        "already memorised, nor a model pre-trained on the data (README: contamination). In mode <code>report</code> "
        "it never changes a verdict.</p>"
        '<table class="detail" id="contamination"><tr><th>model</th><th>task</th><th>contamination</th>'
        "<th>d test − d reference items [CI]</th>"
        "<th>d (nats/token) [CI]</th><th>gain, exact</th><th>gain, neighbours</th><th>items memorised</th>"
        f"<th>mode</th></tr>{''.join(rows)}</table>"
    )


def _versus_reference(c: ContaminationRecord) -> str:
    """The reference comparison's cell: the difference with its interval and the items, or why there is none."""
    if c.reference_statistic is None:
        return escape(c.reference_reason or "no reference items given")
    return (
        f"{_fmt(c.reference_statistic, True)} [{_fmt(c.reference_ci_low, True)}, "
        f"{_fmt(c.reference_ci_high, True)}] ({c.reference_items} items)"
    )


def sequential_section(report: Report) -> str:
    """Where --clue-sequential stopped each case: its CI and verdict are at that look's nominal level."""
    if not report.sequential:
        return ""
    items = "".join(
        f"<li>{escape(row)} on {escape(task)}: {escape(sequential_text(stop))} (nominal level {stop.level:.2g})</li>"
        for (row, task), stop in report.sequential.items()
    )
    return (
        "<p>Sequential gate: generation stopped once every gated metric had crossed a boundary (O'Brien–Fleming "
        f"alpha spending); each case's interval is at its look's nominal level.</p><ul>{items}</ul>"
    )


def render_html(report: Report) -> str:
    counts = report.verdict_counts()
    state, lines = report.headline()
    text = "<br>".join(escape(line) for line in lines)
    if state == "failing":
        headline = f'<div class="headline" id="headline">Failing: {text}</div>'
    else:
        headline = f'<div class="headline{" ok" if state == "ok" else ""}" id="headline">{text}</div>'
    legend = "".join(
        f'<span style="background:{COLORS[v]}">{MARKS[v]} {v} ({counts.get(v, 0)})</span>' for v in VERDICTS
    )
    details = "".join(
        f"<details><summary>{escape(t.title)}</summary>{_detail_table(report.details[t.name])}</details>"
        for t in report.tasks
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>clue report</title><style>{CSS}</style></head><body>
<h1>clue report</h1>
<p>Primary metric per task with its {report.confidence:.0%} confidence interval; Δ = model − base with its paired
{report.confidence:.0%} CI. Cells are coloured by verdict (higher is better for every primary metric).</p>
{headline}
<p class="legend">{legend}</p>
{not_run_section(report)}<h2>Summary</h2>{summary_table(report)}{sequential_section(report)}{diagnostics_section(report)}
<h2>Difference to the base model</h2>{delta_plot(report)}{phrasings_section(report.worded)}
{contamination_section(report)}
<h2>All metrics</h2><p>Gated metrics decide the test case; a case with several is tested as one claim (Holm's
procedure: each regression p-value is compared with the level shown). MDE: the smallest change this comparison finds
with 80 % power at its n and variance; when it exceeds the margin (⚠), the comparison is too small to show
non-inferiority at that margin.</p>{details}
<h2>Flips</h2><p>Samples where the base model did better than the candidate, and the reverse (binary metrics: every
discordant sample; continuous: differences of at least 0.1), with parse failures, missing or extra ICD codes and
degenerate outputs. Sample ids are hashed and no text is shown unless the data set is public or the run used
<code>--clue-report-samples</code>.</p>{flips_section(report)}
<h2>Run provenance</h2>{provenance_section(report)}
</body></html>
"""
