"""Re-render the HTML and Markdown reports from a recorded results JSON, without running anything.

python -m clue.report reports/clue-results.json [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from clue.records import RecordError
from clue.report.render import write_reports
from clue.report.results import read_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m clue.report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("results", type=Path, help="a clue-results.json written by a pytest run")
    parser.add_argument("--out", type=Path, help="folder for index.html and summary.md (default: next to RESULTS)")
    args = parser.parse_args(argv)
    try:
        run = read_run(args.results)
    except RecordError as exc:
        print(f"clue.report: not a clue results file: {exc}", file=sys.stderr)
        return 2
    html_path, md_path = write_reports(args.out or args.results.parent, run)
    print(f"wrote {html_path} and {md_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
