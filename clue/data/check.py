"""`clue data check DIR`: is every data set where the suite looks for it, in the published format, complete?

Per data set: found / missing / invalid, the file, its record count against the paper's, and its content hash (to
compare with a colleague's copy without exchanging credentialed text). Validation is the tasks' own loaders, so
what passes here loads in `pytest benchmarks`; an invalid file is reported with file, record and field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from clue.errors import DataError
from clue.store.fingerprint import file_sha256
from clue.tasks import get_task


@dataclass(frozen=True)
class DataSet:
    name: str
    task: str  # the task whose loader validates it (LongHealth's three sub-tasks share one file)
    paper_records: int
    unit: str
    source: str  # where to obtain it


DATASETS: tuple[DataSet, ...] = (
    DataSet("MedNLI", "mednli", 1425, "pairs", "PhysioNet (credentialed): physionet.org/content/mednli/"),
    DataSet("MeQSum", "meqsum", 1000, "questions", "public (CC BY 4.0): github.com/abachaa/MeQSum"),
    DataSet(
        "Problem Summary",
        "problem_summary",
        237,
        "notes",
        "PhysioNet (credentialed): BioNLP-2023 shared task 1A, physionet.org/content/bionlp-workshop-2023-task-1a/",
    ),
    DataSet("LongHealth", "longhealth_task1", 400, "questions", "public: github.com/kbressem/LongHealth"),
    DataSet(
        "MeDiSumQA",
        "medisumqa",
        453,
        "question-answer pairs",
        "built from MIMIC-IV-Note (credentialed): clue data build medisumqa",
    ),
    DataSet(
        "MeDiSumCode",
        "medisumcode",
        500,
        "discharge summaries",
        "built from MIMIC-IV + MIMIC-IV-Note (credentialed): clue data build medisumcode",
    ),
)


@dataclass(frozen=True)
class CheckResult:
    dataset: DataSet
    status: str  # found | missing | invalid
    path: Path | None = None
    records: int | None = None
    sha256: str | None = None
    problem: str | None = None

    @property
    def count_matches(self) -> bool:
        return self.records == self.dataset.paper_records


def check_one(data_dir: Path | None, dataset: DataSet, explicit: Mapping[str, Path] | None = None) -> CheckResult:
    """One data set, found as the suite finds it: a file named for the task (--clue-data / [tool.clue] data) is
    taken as given, else the task's file in `data_dir`."""
    task = get_task(dataset.task)
    path: Path | None
    if explicit and dataset.task in explicit:
        path = explicit[dataset.task] if explicit[dataset.task].is_file() else None
    elif data_dir is None:
        path = None
    else:
        try:
            path = task.find_data(data_dir)  # refuses a file resolving outside data_dir
        except DataError as exc:
            return CheckResult(dataset, "invalid", Path(exc.path), problem=str(exc))
    if path is None:
        return CheckResult(dataset, "missing")
    try:
        samples = task.load(path)
    except DataError as exc:
        return CheckResult(dataset, "invalid", path, problem=str(exc))
    except Exception as exc:  # a loader's bug must not stop the check of the other data sets
        problem = f"{path}: the loader failed ({type(exc).__name__}); a bug in clue: please report it"
        return CheckResult(dataset, "invalid", path, problem=problem)
    records = len(samples)
    if dataset.task.startswith("longhealth"):
        records //= type(task).repetitions  # type: ignore[attr-defined]
    return CheckResult(dataset, "found", path, records, file_sha256(path))


def check(data_dir: Path | None, explicit: Mapping[str, Path] | None = None) -> list[CheckResult]:
    return [check_one(data_dir, d, explicit) for d in DATASETS]


def render(data_dir: Path | None, results: list[CheckResult], explicit: Mapping[str, Path] | None = None) -> list[str]:
    lines = [f"clue data check {data_dir if data_dir is not None else '(no data folder)'}", ""]
    for r in results:
        d = r.dataset
        if r.status == "missing":
            if explicit and d.task in explicit:
                lines.append(f"MISSING  {d.name:<16} {explicit[d.task]} (named by --clue-data / [tool.clue] data)")
                continue
            where = (data_dir or Path("<data dir>")) / d.task.split("_task")[0]
            names = " or ".join(get_task(d.task).data_files)
            lines.append(f"MISSING  {d.name:<16} put {names} in {where}/  (source: {d.source})")
        elif r.status == "invalid":
            lines.append(f"INVALID  {d.name:<16} {r.problem}")
        else:
            note = "as in the paper" if r.count_matches else f"paper: {d.paper_records}"
            lines.append(f"found    {d.name:<16} {r.records} {d.unit} ({note})  sha256 {str(r.sha256)[:16]}  {r.path}")
    found = sum(r.status == "found" for r in results)
    invalid = sum(r.status == "invalid" for r in results)
    lines += ["", f"{found} found, {sum(r.status == 'missing' for r in results)} missing, {invalid} invalid"]
    return lines
