"""Operating characteristics of the gate, by seeded simulation through the real decision code
(`clue.statistics.decision`).

Each scenario draws paired per-sample scores for one test case with a known true change, runs `decide` on them,
and counts verdicts. Used by `studies/gate_calibration.py` (the table in studies/README.md) and by a
small CI test of the family-wise error rate. The shapes follow the tasks: several correlated continuous metrics
(MeQSum, Problem Summary, MeDiSumQA), a binary accuracy with few disagreements (MedNLI), skewed continuous gains
from failed samples. `adapted_items` draws the contamination diagnostic's scores for the same purpose
(`studies/contamination_reference.py`, tests/run/test_contamination.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np
import numpy.typing as npt

from clue.statistics.contamination import ItemLogprobs
from clue.statistics.decision import GateConfig, MetricScores, decide
from clue.statistics.phrasings import WordingScores, decide_phrasings
from clue.types import MetricSpec

Draw = Callable[[np.random.Generator], list[MetricScores]]


@dataclass(frozen=True)
class Scenario:
    name: str
    draw: Draw
    n: int


def correlated_continuous(
    n: int,
    sds: Sequence[float],
    margins: Sequence[float],
    rho: float,
    shift: Sequence[float] | npt.NDArray[np.float64],
) -> Draw:
    """Per-sample gains ~ N(shift_j, sd_j^2) with pairwise correlation rho between metrics; base fixed at 0.5."""
    k = len(sds)
    correlation = np.full((k, k), rho) + (1 - rho) * np.eye(k)
    chol = np.linalg.cholesky(correlation)
    specs = [MetricSpec(f"m{j}", "simulated") for j in range(k)]

    def draw(rng: np.random.Generator) -> list[MetricScores]:
        z = rng.standard_normal((n, k)) @ chol.T
        base = np.full(n, 0.5)
        return [MetricScores(specs[j], base + shift[j] + sds[j] * z[:, j], base, margins[j]) for j in range(k)]

    return draw


def paired_binary(n: int, discordance: float, delta: float, margin: float) -> Draw:
    """0/1 pairs with P(model right, base wrong) - P(base right, model wrong) = delta and total discordance psi."""
    better, worse = (discordance + delta) / 2, (discordance - delta) / 2
    if min(better, worse) < 0:
        raise ValueError(f"discordance {discordance} cannot carry a difference of {delta}")
    spec = MetricSpec("accuracy", "simulated", kind="binary")

    def draw(rng: np.random.Generator) -> list[MetricScores]:
        cell = rng.choice(4, size=n, p=[better, worse, 0.7 * (1 - discordance), 0.3 * (1 - discordance)])
        model = np.isin(cell, (0, 2)).astype(float)
        base = np.isin(cell, (1, 2)).astype(float)
        return [MetricScores(spec, model, base, margin)]

    return draw


def failed_samples(n: int, failure_rate: float, margin: float) -> Draw:
    """Skewed gains: the candidate equals the base except on failed samples, which score 0 (base ~ Beta(2, 5))."""
    spec = MetricSpec("f1", "simulated")

    def draw(rng: np.random.Generator) -> list[MetricScores]:
        base = rng.beta(2, 5, n)
        model = np.where(rng.random(n) < failure_rate, 0.0, base)
        return [MetricScores(spec, model, base, margin)]

    return draw


BETA_2_5_MEAN = 2 / 7  # a failure rate of margin / mean puts the true change exactly at -margin


def simulate(scenario: Scenario, sims: int, *, seed: int, config: GateConfig) -> dict[str, float]:
    """Shares of case verdicts over `sims` seeded draws, and the mean MDE of the first gated metric."""
    rng = np.random.default_rng(seed)
    verdicts: Counter[str] = Counter()
    mdes: list[float] = []
    for i in range(sims):
        decision = decide(scenario.draw(rng), GateConfig(config.alpha, config.resamples, seed + i, config.min_samples))
        verdicts[decision.verdict] += 1
        mdes.append(decision.comparisons[0].mde)
    shares = {v: verdicts[v] / sims for v in ("regressed", "inconclusive", "non-inferior", "improved")}
    return {**shares, "mde": float(np.mean(mdes))}


def simulate_sequential(
    scenario: Scenario, sims: int, *, seed: int, config: GateConfig, look_every: int
) -> dict[str, float]:
    """As `simulate`, through the group-sequential gate (`clue.statistics.sequential.run`) on the same draws: shares
    of final verdicts, the mean share of samples used, and the mean number of looks."""
    from clue.statistics.sequential import run

    rng = np.random.default_rng(seed)
    verdicts: Counter[str] = Counter()
    used: list[float] = []
    looks: list[int] = []
    for i in range(sims):
        config_i = GateConfig(config.alpha, config.resamples, seed + i, config.min_samples)
        stop = run(scenario.draw(rng), config_i, look_every)
        assert stop.decision is not None
        verdicts[stop.decision.verdict] += 1
        used.append(stop.units / scenario.n)
        looks.append(stop.index)
    shares = {v: verdicts[v] / sims for v in ("regressed", "inconclusive", "non-inferior", "improved")}
    return {**shares, "used": float(np.mean(used)), "looks": float(np.mean(looks))}


def shifts(margins: Sequence[float], extra: float = 0.0) -> npt.NDArray[np.float64]:
    """A true change of -(margin + extra) on every metric."""
    return -(np.asarray(margins, dtype=float) + extra)


def adapted_items(
    rng: np.random.Generator, n: int, *, gain: float, learnt: float
) -> tuple[list[ItemLogprobs], list[ItemLogprobs]]:
    """(candidate, base) log-probabilities of n items (a reference answer and four neighbours each) for a candidate
    adapted to the task: every answer gains `gain` nats/token over the base, the exact one `learnt` more, with a
    skewed item-to-item spread (a few items gain much more, as real ones do)."""
    base = [ItemLogprobs(float(-rng.uniform(1, 4)), tuple(float(v) for v in -rng.uniform(1, 4, 4))) for _ in range(n)]
    candidate = [
        ItemLogprobs(
            b.exact + gain + learnt + float(rng.gamma(1.0, 0.2)) - 0.2,
            tuple(v + gain + float(rng.normal(0, 0.1)) for v in b.neighbours),
        )
        for b in base
    ]
    return candidate, base


# -- across instruction wordings (clue.statistics.phrasings) ------------------------------------------------------
WordedDraw = Callable[[np.random.Generator], tuple[list[MetricScores], list[WordingScores]]]


def worded_scores(
    n: int,
    wordings: int,
    *,
    kind: Literal["binary", "continuous"],
    rho: float,
    shifts: Sequence[float],
    margin: float,
    sd: float = 0.2,
) -> WordedDraw:
    """Paired scores of one case under `wordings` wordings (the first the reference). Each model's score of a sample
    under a wording is a shared sample effect plus its own noise, correlated between wordings with `rho`; the
    model's true mean change under wording w is `shifts[w]`. `kind` "continuous": scores around 0.5, noise sd `sd`
    for both models; "binary": 0/1 right answers from latent normals (the base right with probability 0.7, the
    model's latent sharing 80 % of the base's: few disagreements, as in MedNLI), so the change is in accuracy."""
    spec = MetricSpec("primary", "simulated", kind=kind)
    correlation = np.full((wordings, wordings), rho) + (1 - rho) * np.eye(wordings)
    chol = np.linalg.cholesky(correlation)
    normal = NormalDist()
    cut = np.array([normal.inv_cdf(min(max(0.7 + s, 1e-6), 1 - 1e-6)) for s in shifts])

    def draw(rng: np.random.Generator) -> tuple[list[MetricScores], list[WordingScores]]:
        zm = rng.standard_normal((n, wordings)) @ chol.T
        zb = rng.standard_normal((n, wordings)) @ chol.T
        if kind == "binary":
            base = (zb < normal.inv_cdf(0.7)).astype(float)
            model = ((0.8 * zb + 0.6 * zm) < cut).astype(float)
        else:
            effect = rng.normal(0.0, 0.1, (n, 1))
            base = 0.5 + effect + sd * zb
            model = 0.5 + effect + np.asarray(shifts) + sd * zm
        reference = [MetricScores(spec, model[:, 0], base[:, 0], margin)]
        others = [WordingScores(f"w{w}", model[:, w], base[:, w]) for w in range(1, wordings)]
        return reference, others

    return draw


def simulate_phrasings(draw: WordedDraw, sims: int, *, seed: int, config: GateConfig) -> dict[str, float]:
    """Shares of verdicts across wordings over `sims` seeded draws, through `decide_phrasings` (the gate's code), and
    the share of draws whose sensitivity finding is not "no difference shown"."""
    rng = np.random.default_rng(seed)
    verdicts: Counter[str] = Counter()
    flagged = 0
    for i in range(sims):
        reference, others = draw(rng)
        config_i = GateConfig(config.alpha, config.resamples, seed + i, config.min_samples)
        decision = decide_phrasings(reference, "primary", others, config_i)
        verdicts[decision.verdict] += 1
        flagged += decision.sensitivity.finding != "no difference shown"
    shares = {v: verdicts[v] / sims for v in ("regressed", "inconclusive", "non-inferior", "improved")}
    return {**shares, "sensitivity_flagged": flagged / sims}
