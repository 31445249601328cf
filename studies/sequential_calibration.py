"""The group-sequential gate (--clue-sequential) against the fixed-n gate, simulated through the real decision
code (clue.statistics.sequential.run -> clue.statistics.decision.decide) on the same seeded draws as
studies/gate_calibration.py.

    python studies/sequential_calibration.py --quick      # a few minutes
    python studies/sequential_calibration.py --sims 400   # the table in studies/README.md

Per task shape (n >= 450, a look every 100 units): the error rates at a true change of exactly -margin (false fail,
false non-inferior; nominal 2.5 % each), the power to find a regression of -(margin + 0.02) on the primary metric,
the power to pass an unchanged model, and the mean share of samples generated for a clearly fine (+0.02 on every
metric), a clearly regressed (-0.07 on the primary metric), an unchanged and an at-margin candidate.
"""

from __future__ import annotations

import argparse
import time

from clue.statistics.calibration import (
    Scenario,
    correlated_continuous,
    paired_binary,
    shifts,
    simulate,
    simulate_sequential,
)
from clue.statistics.decision import GateConfig

SHAPES = [  # (name, n, per-metric gain SDs, margins, correlation) as in gate_calibration.py
    ("MeQSum (4 metrics)", 997, [0.2, 0.15, 0.2, 0.04], [0.02, 0.02, 0.02, 0.005], 0.7),
    ("MeDiSumCode (3)", 499, [0.2, 0.2, 0.1], [0.02, 0.02, 0.02], 0.6),
    ("MeDiSumQA (5)", 453, [0.2, 0.15, 0.2, 0.04, 0.25], [0.02, 0.02, 0.02, 0.005, 0.02], 0.8),
]
PSI = 0.10  # MedNLI-like disagreement between model and base


def scenarios(change: str) -> list[Scenario]:
    out = []
    for name, n, sds, margins, rho in SHAPES:
        shift = {
            "at margin": list(shifts(margins)),
            "regressed -(margin+0.02)": [-(margins[0] + 0.02)] + [0.0] * (len(margins) - 1),
            "clearly fine +0.02": [0.02] * len(margins),
            "clearly regressed -0.07": [-0.07] + [0.0] * (len(margins) - 1),
            "unchanged": [0.0] * len(margins),
        }[change]
        out.append(Scenario(name, correlated_continuous(n, sds, margins, rho, shift), n))
    delta = {
        "at margin": -0.02,
        "regressed -(margin+0.02)": -0.04,
        "clearly fine +0.02": 0.02,
        "clearly regressed -0.07": -0.07,
        "unchanged": 0.0,
    }[change]
    psi = max(PSI, abs(delta) + 0.01)
    out.append(Scenario(f"MedNLI psi={psi:.2f}", paired_binary(1425, psi, delta, 0.02), 1425))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100 simulations, 500 resamples")
    parser.add_argument("--sims", type=int, default=400)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--look-every", type=int, default=100)
    parser.add_argument("--seed", type=int, default=20261125)
    args = parser.parse_args()
    sims, resamples = (100, 500) if args.quick else (args.sims, args.resamples)
    config = GateConfig(alpha=0.025, resamples=resamples, seed=1, min_samples=10)
    began = time.perf_counter()
    print(
        f"alpha = 0.025 one-sided, {sims} simulations per cell (MedNLI: 5x), {resamples} resamples, "
        f"a look every {args.look_every} units; fixed-n -> sequential on the same draws\n"
    )
    header = f"  {'scenario':22} {'n':>5}"
    for change, columns in (
        ("at margin", "false fail            false non-inferior    samples used"),
        ("regressed -(margin+0.02)", "power (regressed)     samples used"),
        ("unchanged", "passes as non-inf.    samples used"),
        ("clearly fine +0.02", "passes as non-inf.    samples used"),
        ("clearly regressed -0.07", "fails as regressed    samples used"),
    ):
        print(f"True change: {change}\n{header}  {columns}")
        for scenario in scenarios(change):
            count = sims * 5 if "MedNLI" in scenario.name else sims
            fixed = simulate(scenario, count, seed=args.seed, config=config)
            seq = simulate_sequential(scenario, count, seed=args.seed, config=config, look_every=args.look_every)
            passed = {k: r["non-inferior"] + r["improved"] for k, r in (("f", fixed), ("s", seq))}
            if change == "at margin":
                cells = [
                    f"{fixed['regressed']:5.1%} -> {seq['regressed']:5.1%}",
                    f"{passed['f']:5.1%} -> {passed['s']:5.1%}",
                ]
            elif "regressed" in change:
                cells = [f"{fixed['regressed']:5.1%} -> {seq['regressed']:5.1%}"]
            else:
                cells = [f"{passed['f']:5.1%} -> {passed['s']:5.1%}"]
            cells.append(f"{seq['used']:6.1%} ({seq['looks']:.1f} looks)")
            print(f"  {scenario.name:22} {scenario.n:5d}  " + "   ".join(f"{c:19}" for c in cells))
        print()
    print(f"{time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
