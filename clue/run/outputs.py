"""One run's output, driven alike by both front ends: `case_finished` as each case is gated (its results file
written at once, so nothing is lost on a crash; its baseline entry kept), `finish` at the end (clue-results.json,
the HTML and Markdown reports, clue-session.json and the baseline file). The pytest plugin adds only pytest's
outcome, skips and JUnit; `clue.evaluate` adds nothing."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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
    unwritten: tuple[str, ...] = ()  # "PATH: why" for each file that could not be written (the rest were)
    tracked: str | None = None  # --clue-mlflow: what was logged, one line


class Run:
    """A run's finished cases and their files. `files=False` (clue.evaluate without write_reports) keeps
    everything in memory and writes only the baseline asked for."""

    def __init__(self, session: ClueSession, *, files: bool = True):
        self.session = session
        self.files = files
        self.reports_dir = session.settings.outputs.reports_dir
        self.entries: dict[tuple[str, str], BaselineEntry] = {}  # (task, model) -> baseline entry, this process's
        self.unwritten: list[str] = []  # "PATH: why", for the one error after the summary

    def _write(self, path: Path, write: Callable[[], Any]) -> bool:
        """`write()`, or, when the system refuses (a file where a folder belongs, a full disk, no permission), the
        path and the reason kept for one error at the end: a report that cannot be written must not cost the run's
        verdicts or the other reports."""
        try:
            write()
        except OSError as exc:
            self.unwritten.append(f"{path}: {exc.strerror or exc}")
            return False
        return True

    def case_finished(self, done: CaseResult) -> CaseRow:
        """Write the case's results file (and, with --clue-save-baseline, its baseline entry) and return its row."""
        path = results_report.result_path(self.reports_dir, done.task, done.case)
        written = not self.files or self._write(path, lambda: results_report.write_json(path, done.record.to_json()))
        entry_file = None
        if self.session.settings.outputs.save_baseline is not None:
            generator = self.session.generator
            generated = generator.generated(done.model, done.task)
            task = self.session.catalog.task(done.task)
            worded = generator.worded_results(done.model, done.task)
            entry = self.session.references.baseline_entry(
                generator.result(done.model, done.task),
                generated.probe_scores,
                generated.reference_scores,
                [(w, worded[w.id]) for w in generator.phrasings.alternatives(task)],
            )
            self.entries[(done.task, done.model)] = entry
            if self.files:  # an xdist worker's entries reach the controller as files
                entry_path = results_report.result_path(self.reports_dir, done.task, done.case, ".baseline-entry")
                if self._write(entry_path, lambda: results_report.write_json(entry_path, entry.to_json())):
                    entry_file = str(entry_path)
        summary = done.record.with_samples(())  # what travels on a test report: no per-sample rows
        # a results file that could not be written is named by no row: a stale one from an earlier run at that path
        # must not be merged, the row's own record stands in for it
        return CaseRow(
            summary, str(path) if written else "", tuple(diagnostic_lines(done.record)), baseline_entry=entry_file
        )

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
            record = self._reports(rows, record, stats)
        saved, entries = None, 0
        if settings.outputs.save_baseline is not None:
            found = {**_entry_files(rows, skip=self.entries), **self.entries}
            target = settings.outputs.save_baseline
            saved = target if self._write(target, lambda: baseline.write(target, list(found.values()))) else None
            entries = len(found)
        tracked = self._track(rows, record) if settings.outputs.mlflow else None
        return Finished(record, saved, entries, tuple(self.unwritten), tracked)

    def _track(self, rows: Sequence[CaseRow], record: RunRecord) -> str | None:
        """--clue-mlflow, after every file is written: the records (read back from the results files when there
        are files) go to the tracking store; a store that fails is one more entry of `unwritten`."""
        from clue.errors import ClueError
        from clue.report.tracking import Tracker, shown_uri

        outputs = self.session.settings.outputs
        uri = str(outputs.mlflow)
        if not self.files:
            held = [r.record for r in rows]
            record = results_report.merged([], held, not_run=record.not_run, strict=record.strict)
        artefacts: list[Path] = []
        case_files: dict[str, Path] = {}
        if self.files and not outputs.report_samples:  # raw text in the reports stays out of the tracking store
            names = ("clue-results.json", "index.html", "summary.md", "clue-session.json")
            artefacts = [self.reports_dir / name for name in names]
            case_files = {f"{r.task}/{r.case}": Path(r.results_json) for r in rows if r.results_json}
        try:
            tracked = Tracker(uri, outputs.mlflow_experiment).log(
                record, settings_params(self.session), artefacts, case_files
            )
        except ClueError as exc:
            self.unwritten.append(f"MLflow tracking at {shown_uri(uri)}: {exc}")
            return None
        except Exception as exc:  # the server down, refusing, a store it cannot open: the verdicts stand
            detail = " ".join(str(exc).split())[:300]
            self.unwritten.append(f"MLflow tracking at {shown_uri(uri)}: {type(exc).__name__}: {detail}")
            return None
        return tracked.line()

    def _reports(self, rows: Sequence[CaseRow], record: RunRecord, stats: RunStats) -> RunRecord:
        """clue-results.json, the HTML and Markdown reports and clue-session.json, each written where it can be."""
        from clue.report.render import report_writers

        files = [Path(r.results_json) for r in rows if r.results_json]
        held = [r.record for r in rows if not r.results_json]  # their files could not be written
        record = results_report.merged(
            files, held, not_run=record.not_run, strict=record.strict, interrupted=record.interrupted
        )
        results, session = self.reports_dir / "clue-results.json", self.reports_dir / "clue-session.json"
        self._write(results, lambda: results_report.write_json(results, record.to_json()))
        for path, write in report_writers(self.reports_dir, record):
            self._write(path, write)
        self._write(session, lambda: results_report.write_json(session, stats.to_json()))
        return record


def settings_params(session: ClueSession) -> dict[str, str]:
    """The run's settings as MLflow parameters (`section.option`), for the parent run: what was asked for."""
    import dataclasses

    out: dict[str, str] = {}
    settings = session.settings
    for section in dataclasses.fields(settings):
        values = getattr(settings, section.name)
        if not dataclasses.is_dataclass(values):
            continue
        for f in dataclasses.fields(values):
            value = getattr(values, f.name)
            if value not in (None, (), [], {}) and f.name != "mlflow":
                out[f"{section.name}.{f.name}"] = str(value)
    return out


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
