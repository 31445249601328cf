"""What --clue-sequential saves end to end: the user-facing suite (`pytest benchmarks`) on the embedded default's
data and metric models, a replayed base and two replayed candidates, each run in full and sequentially in fresh
cache and report folders. Prints, measured in this run, per candidate: the candidate's generations and the wall
time of the sequential run as ratios of the full run's, and whether the verdicts agree.

The base answers every sample as the reference answers it (`Task.render_answer`: the format a model is asked for)
except 30 % of them, which it answers wrongly (another label, no codes, an empty summary); the "clearly fine"
candidate answers every sample right; the "clearly regressed" one answers only 30 % right. Replayed outputs cost no
GPU time, so the generations ratio is the measure of what a stop saves on a real model; the wall-time ratio here is
mostly scoring (BERTScore, UMLS) and pytest, which stop with the generation.

    python studies/sequential_e2e.py                         # every task (MeQSum when its data is there)
    python studies/sequential_e2e.py --look-every 10 -- -k "not meqsum"
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from clue.tasks import REGISTRY, get_task  # noqa: E402
from clue.types import Sample  # noqa: E402

WRONG = {"mednli": "The relation is NEUTRAL.", "medisumcode": "ICD-10 Codes: none"}


def data_file(task: str) -> Path | None:
    """The task's data file as `pytest benchmarks` finds it ([tool.clue] of this repository)."""
    from clue.config import Layer, settings_from, tool_clue
    from clue.run.session import ClueSession

    session = ClueSession(settings_from(REPO, [Layer("[tool.clue]", tool_clue(REPO), REPO)]))
    path = session.catalog.data_path(get_task(task))
    return path if path is not None and path.is_file() else None


def answers(right_share: float, seed: int) -> list[dict[str, str]]:
    """One replay row per sample of every task with data: right on `right_share` of them (seeded), else wrong."""
    rng = random.Random(seed)
    rows = []
    for name in REGISTRY:
        path = data_file(name)
        if path is None:
            continue
        task = get_task(name)
        samples: list[Sample] = task.load(path)
        for sample in samples:
            right = task.render_answer(sample)
            if rng.random() < right_share:
                text = right
            elif name.startswith("longhealth"):
                options = "ABCDE".replace(right.split("The correct answer is ")[-1][:1], "")
                text = f"The correct answer is {options[0]}: wrong."
            else:
                text = WRONG.get(name, "")
            rows.append({"task": name, "sample_id": sample.id, "text": text})
    return rows


def run(work: Path, matrix: Path, extra: list[str]) -> tuple[float, dict[str, Any], list[dict[str, Any]]]:
    command = [
        sys.executable, "-m", "pytest", "benchmarks", "-q", "-p", "no:cacheprovider",
        "--clue-matrix", str(matrix), "--clue-cache-dir", str(work / "cache"),
        "--clue-reports-dir", str(work / "reports"), "--junitxml", str(work / "reports" / "junit.xml"), *extra,
    ]  # fmt: skip
    began = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - began
    stats_file = work / "reports" / "clue-session.json"
    if not stats_file.is_file():
        sys.exit(f"no {stats_file} (exit {done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    results = json.loads((work / "reports" / "clue-results.json").read_text())["results"]
    return wall, json.loads(stats_file.read_text()), results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--look-every", type=int, default=100, help="units between looks (default 100, as the option)")
    parser.add_argument("pytest_args", nargs="*", help="after --: passed to pytest")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        replays = {"base": answers(0.7, 1), "fine": answers(1.0, 2), "regressed": answers(0.3, 3)}
        for name, rows in replays.items():
            (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        print(f"embedded default data, a look every {args.look_every} units; ratios: sequential / full\n")
        print(f"  {'candidate':20} {'generations':>22} {'wall time':>22}  verdicts (full -> sequential)")
        for candidate in ("fine", "regressed"):
            matrix = root / f"{candidate}.toml"
            matrix.write_text(
                f'[models.base]\npath = "{root / "base.jsonl"}"\nbackend = "replay"\n\n'
                f'[models.candidate]\npath = "{root / f"{candidate}.jsonl"}"\nbackend = "replay"\nbase = "base"\n'
            )
            full = run(root / f"{candidate}-full", matrix, args.pytest_args)
            seq = run(
                root / f"{candidate}-seq",
                matrix,
                ["--clue-sequential", "--clue-sequential-look-every", str(args.look_every), *args.pytest_args],
            )
            generated = [r[1]["generated"].get("candidate", 0) for r in (full, seq)]
            verdicts = [
                {r["task"]: r["verdict"] for r in results if r["model"] == "candidate"} for _, _, results in (full, seq)
            ]
            agree = sum(verdicts[0][t] == verdicts[1].get(t) for t in verdicts[0])
            ratio = generated[1] / generated[0]
            print(
                f"  {'clearly ' + candidate:20} {generated[1]:>6} / {generated[0]:<6} = {ratio:5.2f}"
                f" {seq[0]:7.1f} / {full[0]:<7.1f} s = {seq[0] / full[0]:4.2f}  {agree} of {len(verdicts[0])} agree: "
                + ", ".join(f"{t} {verdicts[0][t]}->{verdicts[1].get(t)}" for t in sorted(verdicts[0]))
            )


if __name__ == "__main__":
    main()
