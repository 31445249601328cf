"""What the terminal shows: the generation progress line, and the summary's lines (each case's verdict and metrics,
the contamination diagnostic's gaps, where the time went, GitHub Actions annotations)."""

from __future__ import annotations

import time

import pytest

from clue.records import CaseRow, RunStats
from clue.report.model import sequential_text


class TerminalProgress:
    """Generation progress on the terminal while a test generates: all of a model's generation happens inside its
    first test, where pytest captures output, so a progress bar would show only with -s. This writes through the
    terminal reporter with capture suspended: on a terminal one line per model, rewritten at most twice a second;
    in a CI log a line every 30 s. Quiet under -q; never part of the captured output, so never in JUnit."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.last = 0.0
        self.first: dict[str, tuple[int, int, float]] = {}  # per model: done, tokens, seconds at its first result

    def __call__(self, model: str, engine: str, done: int, total: int, tokens: int, seconds: float) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        if reporter is None or capture is None:
            return
        tty = reporter.isatty()
        now = time.perf_counter()
        if done == 0:  # the engine is up (a backend that says so): rates count from here, not from its load
            self.first[model] = (0, 0, seconds)
            return
        started = model in self.first and self.first[model][0] == 0
        if model not in self.first or (done == 1 and not started):  # else from a model's (or chunk's) first result
            self.first[model] = (done, tokens, seconds)
        finished = done == total
        if not finished and now - self.last < (0.5 if tty else 30.0):
            return
        self.last = now
        line = f"clue: {model} ({engine}): {done}/{total} prompts{self._speed(model, done, total, tokens, seconds)}"
        if finished:
            line += f", done in {duration(seconds)}"
        with capture.global_and_fixture_disabled():
            if tty:
                reporter.write("\r" + line.ljust(100) + ("\n" if finished else ""), flush=True)
            else:
                reporter.write_line(line)

    def _speed(self, model: str, done: int, total: int, tokens: int, seconds: float) -> str:
        """Rates from when the engine was up (backends that report it: an engine that returns results in bursts
        would otherwise show thousands of prompts/s), else from the model's first result (its load is not a rate);
        the ETA from them."""
        done0, tokens0, seconds0 = self.first[model]
        span = seconds - seconds0
        if done <= done0 or span <= 0:
            return ""
        rate = (done - done0) / span
        eta = f", ETA {duration((total - done) / rate)}" if done < total else ""
        return f", {rate:.2f} prompts/s, {(tokens - tokens0) / span:.1f} tokens/s{eta}"


def duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def time_line(stats: RunStats) -> str:
    """Where the session's time went; the contamination probes' share per task, largest first (their cost)."""
    probes = ""
    if stats.contamination_s:
        tasks = sorted(stats.contamination_task_s.items(), key=lambda item: -item[1])
        each = ", ".join(f"{task} {spent:.1f} s" for task, spent in tasks)
        probes = f" ({stats.contamination_s:.1f} s of it contamination probes" + (f": {each})" if each else ")")
    workers = f" ({stats.workers} workers; backend and scoring times summed over them)" if stats.workers > 1 else ""
    return (
        f"time: {stats.wall_s:.1f} s in this session, {stats.backend_s:.1f} s in model backends{probes}, "
        f"{stats.scoring_s:.1f} s scoring{workers}"
    )


def summary_lines(row: CaseRow) -> list[str]:
    """A finished case in the terminal summary: its verdict, each metric (with the comparison), its notes."""
    record = row.record
    kind = "baseline " if record.base_kind == "baseline" else ""
    against = f"vs {kind}{record.base_model}" if record.base_model else "(reference, not gated)"
    lines = [f"{row.task} [{row.case}] {against}: {record.verdict.upper()} ({row.outcome}, n={record.n})"]
    for name, m in sorted(row.metrics.items()):
        line = f"    {name:<22} {m.value:.4f}"
        c = m.comparison
        if c is not None:
            line += (
                f"  base {c.base_mean:.4f}  delta {c.delta:+.4f}  CI [{c.ci_low:+.4f}, {c.ci_high:+.4f}]  {c.verdict}"
            )
        lines.append(line)
    summary = record.phrasings_summary
    if summary is not None:
        each = " | ".join(f"{w.wording} {w.comparison.delta:+.4f} {w.comparison.verdict}" for w in record.phrasings)
        lines.append(f"    wordings ({summary.metric}, model minus base): {each}")
        lines.append(
            f"    across {len(record.phrasings) - 1} wordings: {summary.verdict.upper()} (reference wording alone: "
            f"{summary.reference_verdict.upper()}); spread model {summary.model_spread:.4f} vs base "
            f"{summary.base_spread:.4f}: {summary.finding}"
        )
    if record.sequential is not None:
        stop = record.sequential
        lines.append(f"    sequential: {sequential_text(stop)} (nominal level {stop.level:.2g})")
    lines += [f"    note: {note}" for note in row.diagnostics]
    return lines


def contamination_gaps(rows: list[CaseRow]) -> list[str]:
    """Cases the contamination diagnostic could not judge, once per reason (a replay or a server without
    log-probabilities is one line, not one per case)."""
    gaps: dict[str, list[str]] = {}
    for row in sorted(rows, key=lambda r: (r.task, r.case)):
        c = row.record.contamination
        if c is not None and c.statistic is None:
            gaps.setdefault(f"{c.status}: {c.reason}", []).append(f"{row.task} [{row.case}]")
    return [f"contamination diagnostic {why} ({', '.join(cases)})" for why, cases in gaps.items()]


def github_annotations(rows: list[CaseRow]) -> list[str]:
    """GitHub Actions workflow commands: an error annotation per regressed case (or one whose weights are its
    base's), a warning per inconclusive one and per case the contamination diagnostic flags, so verdicts show in
    the run's summary and on the pull request, not
    only in a passed test's log."""
    out = []
    for row in rows:
        same = row.record.weights_check == "identical"
        verdict = "weights not applied" if same else row.record.verdict
        level = "error" if same else {"regressed": "error", "inconclusive": "warning"}.get(verdict)
        if level is not None:
            title = escape(f"clue {row.task} [{row.case}]: {verdict}", title=True)
            out.append(f"::{level} title={title}::{escape(row.record.headline or verdict)}")
        contamination = row.record.contamination
        if contamination is not None and contamination.flagged:
            title = escape(f"clue {row.task} [{row.case}]: contamination flagged", title=True)
            level = "error" if contamination.mode == "fail" else "warning"
            out.append(f"::{level} title={title}::{escape(contamination.summary)}")
    return out


def escape(text: str, *, title: bool = False) -> str:
    """GitHub's escaping for workflow command data (and, in properties such as title, also ':' and ',')."""
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if title else text
