"""The `clue` command: data set builders, the data checker and the store export (the benchmark runs under pytest).

    clue data check DIR
    clue data fetch meqsum [DIR] [--url MIRROR] [--sha256 HEX]
    clue data build medisumcode --mimic-notes discharge.csv.gz --mimic-diagnoses diagnoses_icd.csv.gz --out FILE
    clue data build medisumqa --mimic-notes discharge.csv.gz --matrix models.toml --model NAME --out FILE
    clue store export --cache-dir .clue-cache [--model NAME] [--task TASK] --out FILE

Errors in the input are printed as one line naming the file, the record and the field; exit status 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from clue.errors import ClueError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clue", description="clue data tools. The benchmark runs with pytest: pytest benchmarks --help"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    data = commands.add_parser("data", help="build and check the benchmark's data sets")
    data_commands = data.add_subparsers(dest="data_command", required=True)

    _add_check(data_commands)
    _add_fetch(data_commands)
    _add_store(commands)
    build = data_commands.add_parser("build", help="build a MIMIC-IV derived data set from the PhysioNet files")
    builders = build.add_subparsers(dest="dataset", required=True)
    _add_build_medisumcode(builders)
    _add_build_medisumqa(builders)
    return parser


def _add_check(data_commands: Any) -> None:
    check = data_commands.add_parser(
        "check",
        help="validate every task's data in DIR against the published format",
        description="Find each task's file in DIR (DIR/<task>/<published file name>), validate it with the task's "
        "loader, and print found / missing / invalid, record counts against the paper's, and a content hash.",
    )
    check.add_argument(
        "data_dir",
        type=Path,
        metavar="DIR",
        nargs="?",
        help="the folder given to --clue-data-dir (default: data_dir under [tool.clue] in ./pyproject.toml)",
    )
    check.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="TASK=FILE",
        help="one task's file, as --clue-data (repeatable); [tool.clue] data in ./pyproject.toml is read too",
    )
    check.add_argument("--strict", action="store_true", help="also fail (exit 1) when a data set is missing")


def _add_fetch(data_commands: Any) -> None:
    fetch = data_commands.add_parser(
        "fetch",
        help="download a public data set (meqsum, longhealth) and verify it is the file clue was validated on",
        description="Download TASK's file from where it is published (or --url), check its SHA-256 against clue's "
        "pin (or --sha256), validate it with the task's loader, and only then move it to DIR/<task>/<file>, where "
        "--clue-data-dir looks. A failed, truncated or tampered download leaves nothing behind. Credentialed data "
        "sets (mednli, problem_summary, medisumqa, medisumcode) are not downloaded: the command says how to get them.",
    )
    fetch.add_argument("task", metavar="TASK", help="meqsum or longhealth (a credentialed task: how to obtain it)")
    fetch.add_argument(
        "data_dir",
        type=Path,
        metavar="DIR",
        nargs="?",
        help="the folder given to --clue-data-dir (default: data_dir under [tool.clue] in ./pyproject.toml)",
    )
    fetch.add_argument("--url", help="download from this address instead (a mirror; https://, http:// or file://)")
    fetch.add_argument(
        "--sha256",
        metavar="HEX",
        help="the SHA-256 the file must have, instead of clue's pin (LongHealth has no pin: a copy you trust)",
    )
    fetch.add_argument("--timeout", type=float, default=60.0, help="seconds without data before giving up (60)")


def _add_store(commands: Any) -> None:
    store = commands.add_parser("store", help="the generation store (.clue-cache/generations.sqlite3)")
    store_commands = store.add_subparsers(dest="store_command", required=True)
    export = store_commands.add_parser(
        "export",
        help="write stored generations as JSON Lines (mode 0600: outputs may echo patient text)",
        description="Export the raw model outputs the store holds, one JSON object per line: model, task, "
        "sample_id, text, finish_reason, token counts, error. The file is readable by its owner only.",
    )
    export.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(".clue-cache"),
        help="the --clue-cache-dir of the runs (default .clue-cache)",
    )
    export.add_argument("--model", help="only this model entry's generations")
    export.add_argument("--task", help="only this task's generations (e.g. mednli)")
    export.add_argument("--out", type=Path, required=True, metavar="FILE", help="output JSON Lines file")


def _add_build_medisumcode(builders: Any) -> None:
    code = builders.add_parser(
        "medisumcode",
        help="discharge summaries + the admission's ICD-10 codes",
        description="Build MeDiSumCode from MIMIC-IV-Note discharge summaries and MIMIC-IV hosp/diagnoses_icd "
        "(ICD-10 rows only), sampling a fixed number of notes with a fixed seed as CLUE does.",
    )
    code.add_argument(
        "--mimic-notes", type=Path, required=True, metavar="CSV", help="MIMIC-IV-Note note/discharge.csv(.gz)"
    )
    code.add_argument(
        "--mimic-diagnoses", type=Path, required=True, metavar="CSV", help="MIMIC-IV hosp/diagnoses_icd.csv(.gz)"
    )
    code.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="FILE",
        help="output JSON file, e.g. DATA/medisumcode/MeDiSumCode.json",
    )
    code.add_argument("--size", type=int, default=500, help="notes to sample (default 500, as in the paper)")
    code.add_argument("--seed", type=int, default=44, help="shuffle seed (default 44, CLUE's)")


def _add_build_medisumqa(builders: Any) -> None:
    qa = builders.add_parser(
        "medisumqa",
        help="question-answer pairs generated from discharge summaries by an LLM",
        description="Build MeDiSumQA: an LLM (any clue backend) writes question-answer pairs from the discharge "
        "instructions of sampled discharge summaries; pairs whose answer repeats the question (highest ROUGE-L / "
        "BERTScore between question and answer) are dropped, as CLUE's post-processing does.",
    )
    qa.add_argument(
        "--mimic-notes", type=Path, required=True, metavar="CSV", help="MIMIC-IV-Note note/discharge.csv(.gz)"
    )
    qa.add_argument("--matrix", type=Path, required=True, metavar="TOML", help="model matrix with the generator")
    qa.add_argument("--model", required=True, help="the matrix entry that writes the questions")
    qa.add_argument(
        "--out", type=Path, required=True, metavar="FILE", help="output JSON file, e.g. DATA/medisumqa/MeDiSumQA.json"
    )
    qa.add_argument("--notes", type=int, default=4000, help="discharge summaries to sample (default 4000, CLUE's)")
    qa.add_argument("--top-k", type=int, default=500, help="pairs to keep (default 500, CLUE's)")
    qa.add_argument("--seed", type=int, default=1, help="sampling seed (default 1)")
    qa.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(".clue-cache"),
        help="generation store and metric models (default .clue-cache)",
    )
    qa.add_argument(
        "--bertscore-model",
        default="allenai/scibert_scivocab_uncased",
        help="BERTScore model for the filter (a local folder works offline; 'tiny-bert' for tests)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "store":
            from clue.store.sqlite import GenerationStore

            path = args.cache_dir / "generations.sqlite3"
            if not path.is_file():
                raise ClueError(f"no generation store at {path} (pass the --clue-cache-dir of your runs)")
            count = GenerationStore(path).export(args.out, model=args.model, task=args.task)
            print(f"wrote {count} generations to {args.out} (mode 0600)")
            return 0
        if args.data_command == "check":
            from clue.data.check import check, render

            data_dir, explicit = _data_locations(args.data_dir, args.data)
            if data_dir is not None and not data_dir.is_dir():
                raise ClueError(f"{data_dir} is not a folder")
            results = check(data_dir, explicit)
            print("\n".join(render(data_dir, results, explicit)))
            bad = any(r.status == "invalid" for r in results)
            missing = any(r.status == "missing" for r in results)
            return 1 if bad or (args.strict and missing) else 0
        if args.data_command == "fetch":
            return _fetch(args)
        if args.dataset == "medisumcode":
            from clue.data import medisumcode

            report = medisumcode.build(args.mimic_notes, args.mimic_diagnoses, args.out, size=args.size, seed=args.seed)
            print("\n".join([f"wrote {args.out}", *report.lines()]))
            return 0
        if args.dataset == "medisumqa":
            from clue.data import medisumqa

            qa_report = medisumqa.build(
                args.mimic_notes,
                args.matrix,
                args.model,
                args.out,
                notes=args.notes,
                top_k=args.top_k,
                seed=args.seed,
                cache_dir=args.cache_dir,
                bertscore_model=args.bertscore_model,
            )
            print("\n".join([f"wrote {args.out}", *qa_report.lines()]))
            return 0
    except (ClueError, OSError) as exc:  # one line naming the file, never a traceback
        print(f"clue: {exc}", file=sys.stderr)
        return 1
    return 2  # pragma: no cover - argparse requires a command


def _fetch(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from clue.data.fetch import fetch, source_of

    source_of(args.task)  # a credentialed or unknown task is explained before a data folder is asked for
    data_dir, _ = _data_locations(args.data_dir, [])
    if data_dir is None:  # pragma: no cover - _data_locations raises first
        raise ClueError("no data folder")
    if not 0 < args.timeout <= 3600:
        raise ClueError(f"--timeout {args.timeout}: give seconds between 0 and 3600")
    bars: list[Any] = []  # the bar opens with the first bytes: a refusal before the download prints no bar

    def progress(done: int, total: int | None) -> None:
        if not bars:
            bars.append(tqdm(desc=f"fetching {args.task}", total=total, unit="B", unit_scale=True, leave=False))
        bars[0].update(done - bars[0].n)

    try:
        got = fetch(args.task, data_dir, url=args.url, sha256=args.sha256, timeout_s=args.timeout, progress=progress)
    finally:
        for bar in bars:
            bar.close()
    what = "already in place" if got.already_there else f"wrote {got.size} bytes"
    print(f"{what}: {got.path}")
    print(f"sha256 {got.sha256}: verified against {got.checked_against}")
    if got.redirected_to:
        print(f"the download was redirected to {got.redirected_to}")
    if got.records is not None:
        print(f"{got.records} records (the task's loader read it); clue data check {data_dir} now finds it")
    return 0


def _data_locations(data_dir: Path | None, pairs: Sequence[str]) -> tuple[Path | None, dict[str, Path]]:
    """The data folder and the per-task files, resolved as the pytest suite resolves them: the command line,
    then `data_dir` and `data` under [tool.clue] in ./pyproject.toml (relative to that file)."""
    from clue.config import data_files, tool_clue

    root = Path.cwd()
    tool = tool_clue(root)
    explicit = data_files(tool.get("data") or [], root, "[tool.clue] data")
    explicit.update(data_files(list(pairs), root, "--data"))
    if data_dir is None and tool.get("data_dir"):
        data_dir = (root / str(tool["data_dir"])).resolve()
    if data_dir is None and not explicit:
        raise ClueError("no data folder: pass DIR, or set data_dir under [tool.clue] in ./pyproject.toml")
    return data_dir, explicit


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
