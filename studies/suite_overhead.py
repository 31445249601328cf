"""How much of a clue run is clue, and how much is the model? And what does the generation store save?

Runs the user-facing suite (`pytest benchmarks`, the tiny models of fixtures/models.toml by default) twice in fresh
cache and report folders, and prints, measured in this run:

- harness overhead: wall time minus time inside the model backends (constructing them, loading weights,
  generating), as a share of the first run's wall time — target <= 5 %;
- the second run, served from the generation store, as a share of the first — target <= 5 %;
- model loads per model in each run — target: one per model in the first, none in the second.

Wall time is the whole `python -m pytest` process (interpreter start, imports, collection, data loading, scoring,
gate, reports). Backend and scoring seconds come from the run's reports/clue-session.json.

    python studies/suite_overhead.py                     # the full suite (MeQSum ~7 min per run on 2 CPUs)
    python studies/suite_overhead.py -k "not meqsum"     # quicker
    python studies/suite_overhead.py -- -n 2              # anything after -- goes to pytest
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TARGET_OVERHEAD = 0.05
TARGET_CACHED = 0.05


def run_suite(work: Path, args: list[str]) -> tuple[float, dict[str, Any], int]:
    command = [
        sys.executable,
        "-m",
        "pytest",
        "benchmarks",
        "-q",
        "-p",
        "no:cacheprovider",
        "--clue-cache-dir",
        str(work / "cache"),
        "--clue-reports-dir",
        str(work / "reports"),
        "--junitxml",
        str(work / "reports" / "junit.xml"),
        *args,
    ]
    began = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - began
    stats_file = work / "reports" / "clue-session.json"
    if not stats_file.is_file():
        sys.exit(
            f"the suite wrote no {stats_file} (exit {done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )
    stats: dict[str, Any] = json.loads(stats_file.read_text())
    stats_file.unlink()  # the second run writes its own
    return wall, stats, done.returncode


def share(part: float, whole: float) -> str:
    return f"{100 * part / whole:5.1f} %" if whole > 0 else "  n/a"


def verdict(ok: bool) -> str:
    return "meets target" if ok else "MISSES target"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-k", dest="keyword", help="pytest -k expression selecting tasks (default: all)")
    parser.add_argument("--limit", type=int, help="--clue-limit N: score only the first N samples of each task")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    options = parser.parse_args()
    args = list(options.pytest_args)
    if options.keyword:
        args += ["-k", options.keyword]
    if options.limit:
        args += ["--clue-limit", str(options.limit)]

    with tempfile.TemporaryDirectory(prefix="clue-bench-") as tmp:
        work = Path(tmp)
        first_wall, first, first_rc = run_suite(work, args)
        second_wall, second, second_rc = run_suite(work, args)

    print(f"pytest benchmarks {' '.join(args)}".rstrip())
    print(f"exit codes: first run {first_rc}, second run {second_rc} (1 = some gate failed, which is fine here)")
    print()
    print(f"first run (empty store)        wall {first_wall:8.1f} s")
    inside = first["backend_s"]
    overhead = max(0.0, first_wall - inside)
    print(f"  inside model backends             {inside:8.1f} s  {share(inside, first_wall)}")
    print(f"  scoring (ROUGE, BERTScore, UMLS)  {first['scoring_s']:8.1f} s  {share(first['scoring_s'], first_wall)}")
    print(
        f"  harness overhead (wall - backend) {overhead:8.1f} s  {share(overhead, first_wall)}   "
        f"target <= {TARGET_OVERHEAD:.0%}: {verdict(overhead <= TARGET_OVERHEAD * first_wall)}"
    )
    print(
        f"second run (served from store) wall {second_wall:8.1f} s  {share(second_wall, first_wall)} of the first   "
        f"target <= {TARGET_CACHED:.0%}: {verdict(second_wall <= TARGET_CACHED * first_wall)}"
    )
    print(f"  of which scoring                  {second['scoring_s']:8.1f} s")
    print()
    print(f"{'model':<20} {'loads 1st':>9} {'loads 2nd':>9} {'generated 1st':>13} {'reused 2nd':>10}")
    ok_loads = True
    for model in sorted(set(first["loads"]) | set(first["reused"])):
        l1, l2 = first["loads"].get(model, 0), second["loads"].get(model, 0)
        ok_loads &= l1 <= 1 and l2 == 0
        print(
            f"{model:<20} {l1:>9} {l2:>9} {first['generated'].get(model, 0):>13} {second['reused'].get(model, 0):>10}"
        )
    print(f"one load per model in the first run, none in the second: {verdict(ok_loads)}")
    print(f"workers: {first['workers']}")


if __name__ == "__main__":
    main()
