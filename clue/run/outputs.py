"""One run's output, driven alike by both front ends: `case_finished` as each case is gated (its results file
written at once, so nothing is lost on a crash; its baseline entry kept), `finish` at the end (clue-results.json,
the HTML and Markdown reports, clue-session.json and the baseline file). The pytest plugin adds only pytest's
outcome, skips and JUnit; `clue.evaluate` adds nothing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clue import baseline
from clue.records import BaselineEntry, CaseRow, NotRun, RunRecord, RunStats
from clue.report import results as results_report
from clue.report.model import diagnostic_lines
from clue.run.evaluation import CaseResult
from clue.run.session import ClueSession


@dataclass(frozen=True)
class Finished:
    """What `finish` wrote: the run's record (without files, `Run(files=False)`, it lists the cases that did not
    run only) and, with a baseline to save, its file and how many entries it holds."""

    record: RunRecord
    saved_baseline: Path | None = None
    baseline_entries: int = 0


class Run:
    """A run's finished cases and their files. `files=False` (clue.evaluate without write_reports) keeps
    everything in memory and writes only the baseline asked for."""

    def __init__(self, session: ClueSession, *, files: bool = True):
        self.session = session
        self.files = files
        self.reports_dir = session.settings.outputs.reports_dir
        self.entries: dict[tuple[str, str], BaselineEntry] = {}  # (task, model) -> baseline entry, this process's

    def case_finished(self, done: CaseResult) -> CaseRow:
        """Write the case's results file (and, with --clue-save-baseline, its baseline entry) and return its row."""
        path = results_report.result_path(self.reports_dir, done.task, done.case)
        if self.files:
            results_report.write_json(path, done.record.to_json())
        entry_file = None
        if self.session.settings.outputs.save_baseline is not None:
            generator = self.session.generator
            generated = generator.generated(done.model, done.task)
            entry = self.session.references.baseline_entry(
                generator.result(done.model, done.task), generated.probe_scores, generated.reference_scores
            )
            self.entries[(done.task, done.model)] = entry
            if self.files:  # an xdist worker's entries reach the controller as files
                entry_path = results_report.result_path(self.reports_dir, done.task, done.case, ".baseline-entry")
                entry_file = str(results_report.write_json(entry_path, entry.to_json()))
        summary = done.record.with_samples(())  # what travels on a test report: no per-sample rows
        return CaseRow(summary, str(path), tuple(diagnostic_lines(done.record)), baseline_entry=entry_file)

    def finish(
        self,
        rows: Sequence[CaseRow],
        not_run: Sequence[NotRun],
        stats: RunStats,
        *,
        interrupted: bool = False,
    ) -> Finished:
        """The run's files from every finished case's row (this process's and those xdist workers sent)."""
        settings = self.session.settings
        record = RunRecord((), tuple(not_run), settings.gate.strict, interrupted)
        if self.files:
            from clue.report.render import write_reports

            paths = [Path(r.results_json) for r in rows]
            record = results_report.merge(
                self.reports_dir, paths, not_run=not_run, strict=settings.gate.strict, interrupted=interrupted
            )
            write_reports(self.reports_dir, record)
            results_report.write_json(self.reports_dir / "clue-session.json", stats.to_json())
        if settings.outputs.save_baseline is None:
            return Finished(record)
        entries = {**_entry_files(rows, skip=self.entries), **self.entries}
        written = baseline.write(settings.outputs.save_baseline, list(entries.values()))
        return Finished(record, written, len(entries))


def _entry_files(rows: Sequence[CaseRow], skip: Mapping[tuple[str, str], Any]) -> dict[tuple[str, str], BaselineEntry]:
    """The baseline entries xdist workers wrote, one per task x model; those this process holds (`skip`) are not
    read back from their files."""
    entries: dict[tuple[str, str], BaselineEntry] = {}
    for row in rows:
        if (row.task, row.record.model) in skip:
            continue
        if row.baseline_entry and Path(row.baseline_entry).is_file():
            path = Path(row.baseline_entry)
            entry = BaselineEntry.from_json(results_report.read_json(path), str(path))
            entries[(entry.task, entry.model)] = entry
    return entries
