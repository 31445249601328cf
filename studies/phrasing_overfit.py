"""Phrasing robustness on the real model (issue 44): LoRA adapters of SmolLM2 trained on MeQSum's first scored items
through the task's own prompts, gated against SmolLM2 with `pytest benchmarks -k meqsum --clue-phrasings 3`.

- `overfit`: the reference summaries under the reference wording, an off-topic reply under clue-1 and clue-2 (a
  fine-tune that learnt the benchmark's template): must be IMPROVED under the reference wording alone and
  REGRESSED across wordings;
- `robust`: the reference summaries under all three wordings: must not be flagged (not REGRESSED; not "more
  sensitive");
- `overfit-short`: as `overfit`, but the other wordings' pairs without the few-shot turns (a third of the training
  time): the off-topic reply does not carry over to the gate's prompts, which hold the turns, and the adapter is
  IMPROVED under every wording. A cheaper adapter is not the same experiment.

    python studies/phrasing_overfit.py            # about 25 minutes on 2 CPU cores (adapters cached after)

Recorded output: studies/results/phrasing_overfit.txt.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers import MEQSUM, REPO
from tests.helpers.child_suite import run_suite
from tests.helpers.phrasing_adapters import adapter

ITEMS, WORDINGS, THREADS = 12, 3, 2


def main() -> int:
    from clue.models import smollm2

    if not MEQSUM.is_file():
        print(f"MeQSum's data is not at {MEQSUM}")
        return 1
    began = time.perf_counter()
    base = smollm2.hf_model(REPO / ".clue-cache")
    adapters = {
        "overfit": adapter(ITEMS, WORDINGS, "overfit", epochs=4, lr=1e-3, threads=THREADS),
        "robust": adapter(ITEMS, WORDINGS, "robust", epochs=4, lr=1e-3, threads=THREADS),
        "overfit-short": adapter(
            10, WORDINGS, "overfit", epochs=3, lr=2e-3, threads=THREADS, alternatives_with_shots=False
        ),
    }
    trained = time.perf_counter() - began
    matrix = f'[models.smollm2]\npath = "{base}"\ndtype = "float32"\n'
    for name, folder in adapters.items():
        matrix += f'\n[models.{name}]\npath = "{base}"\nadapter = "{folder}"\ndtype = "float32"\nbase = "smollm2"\n'
    with tempfile.TemporaryDirectory() as tmp:
        options = ["-k", "meqsum", "--clue-limit", str(ITEMS), "--clue-phrasings", str(WORDINGS)]
        run = run_suite(Path(tmp), matrix, *options, "--clue-contamination", "off")
        print(f"adapters trained or found in {trained:.0f} s; gate run {time.perf_counter() - began - trained:.0f} s")
        print(f"MeQSum, first {ITEMS} scored items, {WORDINGS} wordings, SmolLM2-135M-Instruct float32, rougeL\n")
        print("| adapter | reference | clue-1 | clue-2 | combined | verdict | reference alone | sensitivity |")
        print("|---|---|---|---|---|---|---|---|")
        for name in adapters:
            record = run.record("meqsum", name)
            summary = record["phrasings_summary"]
            cells = [f"{e['model']:.3f} vs {e['base']:.3f} {e['verdict']}" for e in record["phrasings"]]
            sense = summary["sensitivity"]
            print(
                f"| {name} | {' | '.join(cells)} | {summary['verdict'].upper()} | "
                f"{summary['reference_verdict'].upper()} | {sense['finding']} ({sense['delta']:+.3f} "
                f"[{sense['ci_low']:+.3f}, {sense['ci_high']:+.3f}]) |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
