"""What --clue-phrasings N costs: the same run at N = 1 and at N (fresh store each), measured in one script run, so
the ratios are of the same machine and load.

    python studies/phrasings_cost.py                                   # the tiny default models, 4 tasks
    python studies/phrasings_cost.py --smollm2 -k meqsum --limit 10    # SmolLM2 (transformers backend)
    python studies/phrasings_cost.py --n 3 -- -k "mednli"              # anything after -- goes to pytest

Prints per run: wall time, seconds inside the model backends, generations, scoring seconds; then the ratios N / 1.
Generation is N times the prompts (every wording is the whole task again); scoring is N times the samples; the
statistics add little. With vLLM, run it in the vLLM environment (`.ci/vllm-env python studies/phrasings_cost.py
--vllm ...`).
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


def run(work: Path, options: list[str]) -> dict[str, Any]:
    command = [sys.executable, "-m", "pytest", "benchmarks", "-q", "-p", "no:cacheprovider"]
    command += ["--clue-cache-dir", str(work / "cache"), "--clue-reports-dir", str(work / "reports"), *options]
    began = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - began
    session = work / "reports" / "clue-session.json"
    if not session.is_file():
        sys.exit(f"no {session} (exit {done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    stats: dict[str, Any] = json.loads(session.read_text())
    return {
        "wall": wall,
        "backend": stats["backend_s"],
        "scoring": stats["scoring_s"],
        "generated": sum(stats["generated"].values()),
    }


def matrix(work: Path, engine: str) -> list[str]:
    from clue.models import smollm2

    base = smollm2.hf_model(REPO / ".clue-cache")
    lora = smollm2.hf_adapter(REPO / ".clue-cache")
    backend = 'backend = "vllm"\nmax_model_len = 2048\n' if engine == "vllm" else ""
    text = (
        f'[models.smollm2]\npath = "{base}"\ndtype = "float32"\n{backend}\n'
        f'[models.lora]\npath = "{base}"\nadapter = "{lora}"\ndtype = "float32"\nbase = "smollm2"\n{backend}'
    )
    (work / "models.toml").write_text(text)
    return ["--clue-matrix", str(work / "models.toml")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=3, help="wordings to compare with the reference alone")
    parser.add_argument("--limit", type=int, default=10, help="--clue-limit")
    parser.add_argument("--smollm2", action="store_true", help="SmolLM2 and its LoRA (transformers) instead")
    parser.add_argument("--vllm", action="store_true", help="SmolLM2 and its LoRA on vLLM (its environment)")
    parser.add_argument("-k", default="mednli or medisumcode or meqsum or problem_summary", help="pytest -k")
    parser.add_argument("pytest", nargs="*", help="more pytest options, after --")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        options = ["-k", args.k, "--clue-limit", str(args.limit), "--clue-contamination", "off", *args.pytest]
        if args.smollm2 or args.vllm:
            options += matrix(Path(tmp), "vllm" if args.vllm else "transformers")
        one = run(Path(tmp) / "one", options)
        many = run(Path(tmp) / "many", [*options, "--clue-phrasings", str(args.n)])
    print(f"options: {' '.join(options)}")
    print("| run | wall s | backend s | generations | scoring s |")
    print("|---|---|---|---|---|")
    for name, r in (("N = 1", one), (f"N = {args.n}", many)):
        print(f"| {name} | {r['wall']:.1f} | {r['backend']:.1f} | {r['generated']} | {r['scoring']:.1f} |")
    ratio = {key: many[key] / one[key] if one[key] else float("nan") for key in one}
    print(
        f"ratios N={args.n} / N=1: wall {ratio['wall']:.2f}, backend {ratio['backend']:.2f}, "
        f"generations {ratio['generated']:.2f}, scoring {ratio['scoring']:.2f}"
    )


if __name__ == "__main__":
    main()
