"""Re-render the HTML and Markdown reports from a recorded results JSON, without running anything.

python -m clue.report reports/clue-results.json [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from clue.report.render import write_reports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m clue.report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("results", type=Path, help="a clue-results.json written by a pytest run")
    parser.add_argument("--out", type=Path, help="folder for index.html and summary.md (default: next to RESULTS)")
    args = parser.parse_args(argv)
    try:
        data = json.loads(args.results.read_text(encoding="utf-8"))
        records = data["results"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        print(f"clue.report: {args.results}: not a clue results file ({type(exc).__name__}: {exc})", file=sys.stderr)
        return 2
    html_path, md_path = write_reports(
        args.out or args.results.parent,
        records,
        not_run=data.get("not_run", []),
        strict=data.get("strict", False),
        interrupted=data.get("interrupted", False),
    )
    print(f"wrote {html_path} and {md_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
