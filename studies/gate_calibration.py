"""Operating characteristics of clue's gate, simulated through the real decision code (clue.statistics.decision.decide).

    python studies/gate_calibration.py --quick        # about a minute
    python studies/gate_calibration.py --sims 2000    # the table in studies/README.md

Prints, per scenario (MedNLI-like binary cases with 20x the simulations: they are cheap), the share of test cases
that end regressed / non-inferior when the true change is exactly
-margin (the error rates: both must stay near alpha = 2.5 %), the power to find a regression of -(margin + d),
the pass rate of an unchanged model under --clue-strict, and the mean minimum detectable effect (MDE) of the
first gated metric. Scenario shapes follow the tasks (see clue/statistics/calibration.py).
"""

from __future__ import annotations

import argparse
import time

from clue.statistics.calibration import (
    BETA_2_5_MEAN,
    Scenario,
    correlated_continuous,
    failed_samples,
    paired_binary,
    shifts,
    simulate,
)
from clue.statistics.decision import GateConfig

ROUGE_SD, ROUGE2_SD, BERT_SD, UMLS_SD, ICD_SD = 0.2, 0.15, 0.04, 0.25, 0.2
MARGIN, BERT_MARGIN = 0.02, 0.005

# (name, n, per-metric gain SDs, margins, correlation)
TEXT_SDS = [ROUGE_SD, ROUGE2_SD, ROUGE_SD, BERT_SD, UMLS_SD]
TEXT_MARGINS = [MARGIN, MARGIN, MARGIN, BERT_MARGIN, MARGIN]
MULTI = [
    ("MeQSum (4 metrics)", 997, TEXT_SDS[:4], TEXT_MARGINS[:4], 0.7),
    ("Problem Summary (5)", 237, TEXT_SDS, TEXT_MARGINS, 0.5),
    ("MeDiSumQA (5)", 453, TEXT_SDS, TEXT_MARGINS, 0.8),
    ("MeDiSumCode (3)", 499, [ICD_SD, ICD_SD, 0.1], [MARGIN] * 3, 0.6),
]


def at_margin_scenarios() -> list[Scenario]:
    out = [Scenario(name, correlated_continuous(n, sds, m, rho, shifts(m)), n) for name, n, sds, m, rho in MULTI]
    for psi in (0.025, 0.03, 0.02):
        out.append(Scenario(f"MedNLI psi={psi:.3f}", paired_binary(1425, psi, -MARGIN, MARGIN), 1425))
    out.append(Scenario("skewed (7% failed)", failed_samples(237, MARGIN / BETA_2_5_MEAN, MARGIN), 237))
    return out


def power_scenarios(d: float) -> list[Scenario]:
    """A regression of -(margin + d) on the primary metric (ROUGE-L-like for the text tasks), the others unchanged."""
    out = []
    for name, n, sds, m, rho in (MULTI[0], MULTI[1]):
        shift = [0.0] * len(m)
        shift[0] = -(m[0] + d)
        out.append(Scenario(name, correlated_continuous(n, sds, m, rho, shift), n))
    return [
        *out,
        Scenario("MedNLI psi=0.100", paired_binary(1425, 0.10, -(MARGIN + d), MARGIN), 1425),
        Scenario("skewed (237)", failed_samples(237, (MARGIN + d) / BETA_2_5_MEAN, MARGIN), 237),
    ]


def unchanged_scenarios() -> list[Scenario]:
    out = [Scenario(name, correlated_continuous(n, sds, m, rho, [0.0] * len(m)), n) for name, n, sds, m, rho in MULTI]
    out.append(Scenario("MedNLI psi=0.100", paired_binary(1425, 0.10, 0.0, MARGIN), 1425))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="200 simulations, 1,000 resamples (about a minute)")
    parser.add_argument("--sims", type=int, default=1000, help="simulated test cases per scenario (default 1000)")
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples per comparison")
    parser.add_argument("--seed", type=int, default=20261125)
    args = parser.parse_args()
    sims, resamples = (200, 1000) if args.quick else (args.sims, args.resamples)
    config = GateConfig(alpha=0.025, resamples=resamples, seed=1, min_samples=10)
    began = time.perf_counter()
    print(f"alpha = 0.025 one-sided, {sims} simulations per scenario, {resamples} resamples\n")

    print("True change exactly -margin on every gated metric (error rates; nominal 2.5 %):")
    print(f"  {'scenario':28} {'n':>5} {'false fail':>10} {'false non-inferior':>19} {'MDE':>7}")
    case_rates = []
    for scenario in at_margin_scenarios():
        # the binary (Tango) cases need no bootstrap: 20x the simulations for a precise size near alpha
        r = simulate(scenario, sims * 20 if "MedNLI" in scenario.name else sims, seed=args.seed, config=config)
        case_rates.append(r["regressed"])
        print(
            f"  {scenario.name:28} {scenario.n:5d} {r['regressed']:10.1%} {r['non-inferior'] + r['improved']:19.1%}"
            f" {r['mde']:7.4f}"
        )
    suite = 1.0
    for rate in case_rates[:4] + case_rates[4:5] * 4:  # 8 cases: 4 text/code tasks, MedNLI-like for the rest
        suite *= 1 - rate
    print(f"  whole suite (8 cases), P(>= 1 false failure) ~ {1 - suite:.1%} (no correction across cases)\n")

    print("Power: share regressed when the primary metric's true change is -(margin + d), the others unchanged:")
    print(f"  {'scenario':28} " + " ".join(f"{'d=' + format(d, '.2f'):>7}" for d in (0.01, 0.02, 0.03, 0.04, 0.05)))
    rows: dict[str, list[float]] = {}
    for d in (0.01, 0.02, 0.03, 0.04, 0.05):
        for scenario in power_scenarios(d):
            result = simulate(scenario, sims, seed=args.seed, config=config)
            rows.setdefault(scenario.name, []).append(result["regressed"])
    for name, values in rows.items():
        print(f"  {name:28} " + " ".join(f"{v:7.1%}" for v in values))

    print("\nUnchanged model (true change 0): share that passes --clue-strict (every gated metric non-inferior):")
    for scenario in unchanged_scenarios():
        r = simulate(scenario, sims, seed=args.seed, config=config)
        print(f"  {scenario.name:28} {scenario.n:5d} {r['non-inferior'] + r['improved']:7.1%}  (MDE {r['mde']:.4f})")
    print(f"\n{time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
