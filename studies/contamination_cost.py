"""What the contamination diagnostic costs the default run. Runs the user-facing suite (`pytest benchmarks`, the
embedded default: two tiny Llama models, every task) in fresh cache and report folders twice, with the diagnostic
off and on (its default, `report`), and prints, measured in this run: each run's wall time, the ratio on/off, and
the time the run with it spent on the probes (from its clue-session.json: building them and scoring them on both
models) as a share of that run's wall time and of its time in model backends, in all and per task.

    python studies/contamination_cost.py                 # every task (MeQSum ~7 min per run on 2 CPUs)
    python studies/contamination_cost.py -k "not meqsum"
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "studies"))

from suite_overhead import run_suite, share  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-k", dest="keyword", help="pytest -k expression selecting tasks (default: all)")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    options = parser.parse_args()
    args = list(options.pytest_args) + (["-k", options.keyword] if options.keyword else [])
    with tempfile.TemporaryDirectory() as tmp:
        off_wall, off, _ = run_suite(Path(tmp) / "off", [*args, "--clue-contamination", "off"])
        on_wall, on, _ = run_suite(Path(tmp) / "on", args)
    probes = float(on.get("contamination_s", 0.0))
    print(f"diagnostic off: {off_wall:7.1f} s wall, {off['backend_s']:7.1f} s in model backends")
    print(f"diagnostic on:  {on_wall:7.1f} s wall, {on['backend_s']:7.1f} s in model backends")
    print(f"on / off wall:  {on_wall / off_wall:.3f}")
    print(f"probes, in the run with the diagnostic: {probes:.1f} s = {share(probes, on_wall)} of its wall time, "
          f"{share(probes, on['backend_s'])} of its backend time")  # fmt: skip
    for task, spent in sorted(on.get("contamination_task_s", {}).items(), key=lambda item: -float(item[1])):
        print(f"  {task:<14} {float(spent):6.1f} s = {share(float(spent), on_wall)} of the wall time")


if __name__ == "__main__":
    main()
