"""The gate across instruction wordings (--clue-phrasings N), simulated through the real decision code
(`clue.statistics.phrasings.decide_phrasings`, the function `clue.run.gate.run_gate` calls) on correlated wordings.

    python studies/phrasings_size.py --quick        # about a minute
    python studies/phrasings_size.py --sims 2000    # the table in studies/README.md

Per shape (a continuous summary metric at n = 450, margin 0.02; a binary accuracy at n = 1,422, margin 0.05, the
MedNLI test set) and per number of wordings and correlation between them:

- size: the share of false REGRESSED when every wording is exactly at -margin (the boundary of the regression
  claim; nominal alpha = 2.5 %), and of false IMPROVED when every wording is unchanged;
- power: REGRESSED when the reference wording gains and the other wordings lose (a prompt-overfit candidate: +0.03
  under the reference, -(margin + 0.03) under the rest), against the reference wording alone (`decide` on it);
- the sensitivity finding: flagged "more/less sensitive" with equal true spreads (should be rare), and flagged when
  one wording drops by 0.1 for the candidate only.
"""

from __future__ import annotations

import argparse
import time

from clue.statistics.calibration import simulate_phrasings, worded_scores
from clue.statistics.decision import GateConfig, decide

SHAPES = [("continuous", 450, 0.02), ("binary", 1422, 0.05)]  # (kind, n, margin)


def row(kind: str, n: int, margin: float, wordings: int, rho: float, sims: int, config: GateConfig) -> str:
    def rates(shifts: list[float], seed: int) -> dict[str, float]:
        draw = worded_scores(n, wordings, kind=kind, rho=rho, shifts=shifts, margin=margin)  # type: ignore[arg-type]
        return simulate_phrasings(draw, sims, seed=seed, config=config)

    at_margin = rates([-margin] * wordings, 1)
    unchanged = rates([0.0] * wordings, 2)
    unchanged_alone = reference_alone(kind, n, margin, wordings, rho, [0.0] * wordings, sims, config, seed=2)
    overfit_shifts = [0.03] + [-(margin + 0.03)] * (wordings - 1)
    overfit = rates(overfit_shifts, 3)
    alone = reference_alone(kind, n, margin, wordings, rho, overfit_shifts, sims, config, seed=3)
    dropped = rates([0.0] * (wordings - 1) + [-0.1], 4)
    return (
        f"| {kind} n={n} | {wordings} | {rho:.1f} | {at_margin['regressed']:.1%} | {unchanged['improved']:.1%} "
        f"({unchanged_alone:.1%}) | "
        f"{overfit['regressed']:.1%} (reference alone: {alone:.1%} improved) | "
        f"{unchanged['sensitivity_flagged']:.1%} | {dropped['sensitivity_flagged']:.1%} |"
    )


def reference_alone(
    kind: str,
    n: int,
    margin: float,
    wordings: int,
    rho: float,
    shifts: list[float],
    sims: int,
    config: GateConfig,
    *,
    seed: int,
) -> float:
    """The share of IMPROVED the ordinary gate (`decide`) gives on the reference wording alone, on the same draws
    as the family's cell with this seed."""
    import numpy as np

    draw = worded_scores(n, wordings, kind=kind, rho=rho, shifts=shifts, margin=margin)  # type: ignore[arg-type]
    rng = np.random.default_rng(seed)
    improved = 0
    for i in range(sims):
        reference, _ = draw(rng)
        cfg = GateConfig(config.alpha, config.resamples, seed + i, config.min_samples)
        improved += decide(reference, cfg).verdict == "improved"
    return improved / sims


def sizes(sims: int, config: GateConfig, cell: str | None = None) -> None:
    """The two error rates alone, for more simulations per cell in the same time."""
    began = time.perf_counter()
    print("| shape | N | rho | false REGRESSED at -margin | false IMPROVED unchanged (reference alone) |")
    print("|---|---|---|---|---|")
    for kind, n, margin in SHAPES:
        for wordings in (3, 5):
            for rho in (0.3, 0.8):
                if cell is not None and cell != f"{kind},{wordings},{rho}":
                    continue
                draw = worded_scores(n, wordings, kind=kind, rho=rho, shifts=[-margin] * wordings, margin=margin)  # type: ignore[arg-type]
                regressed = simulate_phrasings(draw, sims, seed=1, config=config)["regressed"]
                same = worded_scores(n, wordings, kind=kind, rho=rho, shifts=[0.0] * wordings, margin=margin)  # type: ignore[arg-type]
                improved = simulate_phrasings(same, sims, seed=2, config=config)["improved"]
                alone = reference_alone(kind, n, margin, wordings, rho, [0.0] * wordings, sims, config, seed=2)
                print(
                    f"| {kind} n={n} | {wordings} | {rho:.1f} | {regressed:.1%} | {improved:.1%} ({alone:.1%}) |",
                    flush=True,
                )
    seconds = time.perf_counter() - began
    print(f"\n{sims} simulations per cell, {config.resamples} resamples, alpha 0.025; {seconds:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sims", type=int, default=2000, help="simulated cases per cell")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples per comparison")
    parser.add_argument("--quick", action="store_true", help="100 simulations, N = 3 only")
    parser.add_argument(
        "--size-only", action="store_true", help="only the false REGRESSED and false IMPROVED columns (the sizes)"
    )
    parser.add_argument("--cell", help="with --size-only: one cell, e.g. continuous,3,0.3")
    args = parser.parse_args()
    if args.size_only:
        sizes(args.sims, GateConfig(0.025, args.resamples, 1, 10), args.cell)
        return
    sims = 100 if args.quick else args.sims
    config = GateConfig(0.025, args.resamples, 1, 10)
    began = time.perf_counter()
    print(
        "| shape | N | rho | false REGRESSED at -margin | false IMPROVED unchanged (reference alone) | "
        "prompt-overfit REGRESSED | sensitivity flagged, equal | flagged, one wording -0.1 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for kind, n, margin in SHAPES:
        for wordings in (3,) if args.quick else (3, 5):
            for rho in (0.3, 0.8):
                print(row(kind, n, margin, wordings, rho, sims, config), flush=True)
    seconds = time.perf_counter() - began
    print(f"\n{sims} simulations per cell, {args.resamples} resamples, alpha 0.025; {seconds:.0f} s")


if __name__ == "__main__":
    main()
