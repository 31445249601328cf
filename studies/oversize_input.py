"""How quickly, and in how much memory, an oversized input is refused (issue 30, class 7).

A MeDiSumCode file whose fourth record holds a 50 MB document goes through the task's loader in a fresh child
process (so its peak memory is its own): the time to the DataError, the process's peak resident memory, and the same
two figures for the unmodified fixture, in one run. The peak is the kernel's high-water mark (VmHWM), reset after
the imports. Before the field limit, the probe that found this tokenised the document whole: 4 min 19 s and
11.6 GB for 4 prompts, with no warning.

    python studies/oversize_input.py [--mb 50]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHILD = """
import sys, time
from pathlib import Path
from clue.errors import DataError
from clue.tasks import get_task

def status(key):  # kB, from the kernel's accounting of this process
    line = next(l for l in open("/proc/self/status") if l.startswith(key + ":"))
    return int(line.split()[1])

task = get_task("medisumcode")
open("/proc/self/clear_refs", "w").write("5")  # the peak (VmHWM) restarts here: imports do not count
before = status("VmRSS")
began = time.perf_counter()
try:
    outcome = f"loaded {len(task.load(Path(sys.argv[1])))} records"
except DataError as exc:
    outcome = "refused: " + str(exc).split(": ", 1)[1]
seconds = time.perf_counter() - began
peak = status("VmHWM")
print(f"{seconds:.3f}\\t{before / 1024:.0f}\\t{peak / 1024:.0f}\\t{outcome}")
"""


def measure(path: Path) -> tuple[float, float, float, str]:
    out = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, check=True)
    seconds, before, peak, outcome = out.stdout.strip().split("\t", 3)
    return float(seconds), float(before), float(peak), outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=50, help="size of the oversized document in MB (default 50)")
    args = parser.parse_args()
    fixture = REPO / "fixtures/data/medisumcode/MeDiSumCode.json"
    records = json.loads(fixture.read_text())
    with tempfile.TemporaryDirectory() as folder:
        huge = Path(folder) / "MeDiSumCode.json"
        records[3]["text"] = "Pt. stable overnight, no new complaints. " * (args.mb * 1_000_000 // 41)
        huge.write_text(json.dumps(records))
        rows = [("fixture", fixture), (f"{huge.stat().st_size / 1e6:.0f} MB document", huge)]
        print(f"{'file':<18} {'seconds':>8} {'RSS before MB':>14} {'peak RSS MB':>12}  outcome")
        results = []
        for label, path in rows:
            seconds, before, peak, outcome = measure(path)
            results.append((seconds, peak))
            print(f"{label:<18} {seconds:>8.3f} {before:>14.0f} {peak:>12.0f}  {outcome[:90]}")
    (fixture_s, fixture_peak), (huge_s, huge_peak) = results
    ratios = f"time {huge_s / fixture_s:.0f}x, peak memory {huge_peak / fixture_peak:.2f}x"
    print(f"\noversized / fixture, in this run: {ratios}")


if __name__ == "__main__":
    main()
