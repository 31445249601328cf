"""Operating characteristics of the reference-set contamination statistic, simulated through the real code
(clue.statistics.contamination.against_reference), beside Welch's t-test (scipy) on the same runs and the shipped
neighbour statistic (`diagnose` at the default margin).

    python studies/contamination_reference.py --quick    # seconds
    python studies/contamination_reference.py            # the figures in docs/contamination.md

Each simulated run scores a probed set and a reference set of items under a candidate and its base. The candidate
adapted to the task: every answer, neighbours included, gains `ADAPTATION` nats/token, and the exact answer a
further `learnt` (drawn 0.2-0.6 per run, with a skewed item-to-item spread): a model that learnt the task prefers
the right answer to a wrong one, on the probed and the reference items alike (the null). Contamination adds
`extra` on the probed items only. Printed per (probed, reference) size: the share of runs flagged at each extra,
extra 0 being the false-flag rate, which should stay near alpha.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import stats

from clue.statistics.calibration import adapted_items
from clue.statistics.contamination import ItemLogprobs, against_reference, diagnose, item_statistic

ADAPTATION = 0.5
ALPHA = 0.05  # one-sided, as --clue-alpha 0.05 (the diagnostic uses the gate's level)
MARGIN = 0.35  # --clue-contamination-margin's default
SIZES = ((25, 25), (50, 50), (100, 100), (100, 30))
EXTRAS = (0.0, 0.1, 0.2, 0.3)

Side = tuple[list[ItemLogprobs], list[ItemLogprobs]]


def items(rng: np.random.Generator, n: int, learnt: float) -> Side:
    return adapted_items(rng, n, gain=ADAPTATION, learnt=learnt)


def welch_flags(probed: Side, reference: Side) -> bool:
    d = [[item_statistic(c, b) for c, b in zip(*side, strict=True)] for side in (probed, reference)]
    return bool(stats.ttest_ind(d[0], d[1], equal_var=False, alternative="greater").pvalue < ALPHA)


def simulate(n_probed: int, n_reference: int, extra: float, sims: int, seed: int) -> tuple[float, float, float]:
    """Flag rates of the reference statistic, Welch's t-test and the neighbour statistic over `sims` runs."""
    rng = np.random.default_rng(seed)
    ours = welch = neighbour = 0
    for _ in range(sims):
        learnt = float(rng.uniform(0.2, 0.6))
        probed = items(rng, n_probed, learnt + extra)
        reference = items(rng, n_reference, learnt)
        ours += against_reference(probed, reference, alpha=ALPHA, resamples=2000, seed=int(rng.integers(2**31))).flagged
        welch += welch_flags(probed, reference)
        neighbour += diagnose(*probed, margin=MARGIN, item_threshold=0.5, alpha=ALPHA, resamples=2000, seed=1).flagged
    return ours / sims, welch / sims, neighbour / sims


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sims", type=int, default=1000, help="simulated runs per cell (default 1000)")
    parser.add_argument("--quick", action="store_true", help="100 runs per cell")
    parser.add_argument("--seed", type=int, default=1, help="seed of the simulation (default 1)")
    args = parser.parse_args()
    sims = 100 if args.quick else args.sims
    if sims < 1:
        parser.error(f"--sims {sims}: must be at least 1")
    start = time.perf_counter()
    print(f"{sims} runs per cell, alpha {ALPHA} one-sided; flag rates: reference statistic / Welch's t / neighbours")
    print("| probed / reference | " + " | ".join(f"extra {e:.1f}" for e in EXTRAS) + " |")
    print("|---|" + "---|" * len(EXTRAS))
    for n_probed, n_reference in SIZES:
        cells = [simulate(n_probed, n_reference, e, sims, args.seed) for e in EXTRAS]
        shown = " | ".join(f"{o:.3f} / {w:.3f} / {n:.3f}" for o, w, n in cells)
        print(f"| {n_probed} / {n_reference} | {shown} |", flush=True)
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
