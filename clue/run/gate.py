"""The regression gate in the plugin: pair a model's per-sample scores with its reference's (its base model's, or a
stored baseline's) by sample id and hand them to the task-level decision (`clue.statistics.decision.decide`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from clue.baseline import Reference, output_hashes
from clue.config import Settings
from clue.errors import ClueError
from clue.statistics import paired as stats
from clue.statistics import sequential
from clue.statistics.decision import GateConfig, MetricScores, decide, task_verdict
from clue.statistics.phrasings import PhrasingDecision, WordingScores, decide_phrasings
from clue.tasks import get_task
from clue.tasks.base import Task
from clue.tasks.wordings import Wording, task_wordings
from clue.types import TaskResult


@dataclass(frozen=True)
class PhrasingOutcome:
    """The case under --clue-phrasings N: the family's decision (`clue.statistics.phrasings`), the wordings it
    compared (the reference first), and the verdict the reference wording alone gets (the ordinary gate's)."""

    decision: PhrasingDecision
    wordings: tuple[Wording, ...]
    reference_verdict: stats.Verdict

    def lines(self) -> list[str]:
        """One line per wording and one for the combined comparison, for failure messages."""
        primary = next(c for c in self.decision.reference if c.metric == self.decision.combined.metric)
        pairs = [(self.wordings[0].id, primary), *self.decision.wordings, ("combined", self.decision.combined)]
        lines = [f"wording {wording}: {c.describe()}" for wording, c in pairs]
        sense = self.decision.sensitivity
        lines.append(
            f"sensitivity to wording ({primary.metric} spread over {len(self.wordings)} wordings): model "
            f"{sense.model_spread:.4f}, base {sense.base_spread:.4f}, difference {sense.delta:+.4f} "
            f"[{sense.ci_low:+.4f}, {sense.ci_high:+.4f}]: {sense.finding}"
        )
        return lines


@dataclass(frozen=True)
class GateOutcome:
    task: str
    model: str
    base: str
    comparisons: tuple[stats.Comparison, ...]
    gated: frozenset[str]
    failed_model: int = 0  # samples whose generation failed: scored as wrong answers (0) on every metric
    failed_base: int = 0
    primary: str | None = None  # the task's primary metric: the one the first line of a message shows
    # samples whose output is the reference's, character for character: information (a conversion to another dtype,
    # or two models copying the same few-shot answer, are identical for good reasons), never a verdict by itself
    identical: int = 0
    n: int = 0
    kind: str = "model"  # what the base is: "model" (generated in this run) or "baseline" (stored scores)
    floor_ceiling: str | None = None  # both sides at 0 (or 1) on almost every sample of the primary metric
    phrasings: PhrasingOutcome | None = None  # under --clue-phrasings N > 1: the verdict across wordings

    @property
    def verdict(self) -> stats.Verdict:
        if self.phrasings is not None:
            return self.phrasings.decision.verdict
        return task_verdict(self.comparisons, self.gated)

    def headline(self, verdict: str | None = None) -> str:
        """One readable line: verdict, task, model, base, and the primary metric's difference with its CI, e.g.
        "REGRESSED mednli: model 'ft' vs base 'llama'; accuracy 0.6000 vs 1.0000, Δ -0.4000, 95% CI [...]"."""
        base = f"base {self.base!r}" if self.kind == "model" else f"baseline {self.base!r}"
        head = f"{(verdict or self.verdict).upper()} {self.task}: model {self.model!r} vs {base}"
        primary = next((c for c in self.comparisons if c.metric == self.primary), None)
        if primary is not None:
            head += (
                f"; {primary.metric} {primary.model_mean:.4f} vs {primary.base_mean:.4f}, Δ {primary.delta:+.4f}, "
                f"{primary.confidence:.0%} CI [{primary.ci_low:+.4f}, {primary.ci_high:+.4f}]"
            )
        if self.phrasings is not None:
            worse = self.phrasings.decision.regressed
            head += (
                f"; across {len(self.phrasings.wordings)} wordings (reference wording alone: "
                f"{self.phrasings.reference_verdict.upper()}" + (f"; regressed: {', '.join(worse)})" if worse else ")")
            )
        return head

    def message(self, verdict: str | None = None) -> str:
        head = self.headline(verdict)
        lines = [c.describe() for c in self.comparisons if c.metric in self.gated]
        if self.phrasings is not None:
            lines += self.phrasings.lines()
        if self.failed_model or self.failed_base:
            lines.append(
                f"failed generations scored as wrong answers: model {self.failed_model}, base {self.failed_base} "
                "(see the report's degenerate-output counts; re-running retries them)"
            )
        return head + "\n  " + "\n  ".join(lines)


def metric_scores(result: TaskResult, base: Reference, settings: Settings) -> list[MetricScores]:
    """Every metric's paired scores (the reference's samples in the result's order) with its margin."""
    ids = [s.sample_id for s in result.samples]
    if ids != list(base.sample_ids):
        raise ClueError(
            f"{result.task}: model {result.model!r} and base {base.label!r} were scored on different samples; "
            "both must use the same data file, seed and --clue-limit"
        )
    return [
        MetricScores(m, result.values(m.name), base.values(m.name), settings.gate.margin_for(m)) for m in result.metrics
    ]


def sequential_look(
    result: TaskResult, base: Reference, settings: Settings, plan: sequential.Plan, index: int
) -> sequential.Look:
    """A sequential look at the samples scored so far: on the gated metrics only (the others inform and never stop a
    case; the test's gate shows them all)."""
    metrics = [m for m in metric_scores(result, base, settings) if m.spec.gate]
    return sequential.look(plan, index, metrics, gate_config(settings), result.clusters())


def gate_config(settings: Settings, alpha: float | None = None) -> GateConfig:
    """The decision's settings; `alpha`: a sequential look's nominal level instead of --clue-alpha."""
    level = settings.gate.alpha if alpha is None else alpha
    return GateConfig(level, settings.gate.resamples, settings.gate.bootstrap_seed, settings.gate.min_samples)


@dataclass(frozen=True)
class Worded:
    """One alternative wording's side of a case: the model's result under it and the reference's scores."""

    wording: Wording
    result: TaskResult
    base: Reference


def run_gate(
    result: TaskResult,
    base: Reference,
    settings: Settings,
    alpha: float | None = None,
    task: Task | None = None,
    worded: Sequence[Worded] = (),
) -> GateOutcome:
    """Compare every metric of `result` with the reference's, sample by sample (paired by sample id), at
    --clue-alpha or, for a sequential case, at the nominal level of the look it stopped at. `task`: the run's
    instance (the registry's when not given). With `worded` (--clue-phrasings), the reference wording and the
    alternatives are one family and the verdict is the family's (`clue.statistics.phrasings`)."""
    metrics = metric_scores(result, base, settings)
    config = gate_config(settings, alpha)
    decision = decide(metrics, config, result.clusters())
    outputs = output_hashes(result)
    task = task or get_task(result.task)
    primary = task.primary_metric
    outcome = _outcome(result, base, decision.comparisons, decision.gated, outputs, primary, metrics)
    if not worded:
        return outcome
    alternatives = [_wording_scores(result, w, primary) for w in worded]
    family = decide_phrasings(metrics, primary, alternatives, config, result.clusters())
    wordings = (task_wordings(task)[0], *(w.wording for w in worded))
    phrased = PhrasingOutcome(family, wordings, decision.verdict)
    return replace(outcome, comparisons=family.reference, phrasings=phrased)


def _wording_scores(result: TaskResult, worded: Worded, primary: str) -> WordingScores:
    """The primary metric's pairs under one alternative wording, on the samples of the reference wording."""
    ids = [s.sample_id for s in result.samples]
    mine = worded.result
    if [s.sample_id for s in mine.samples] != ids or list(worded.base.sample_ids) != ids:
        raise ClueError(
            f"{result.task}: under the wording {worded.wording.id!r}, model {result.model!r} and base "
            f"{worded.base.label!r} were not scored on the reference wording's samples"
        )
    return WordingScores(worded.wording.id, mine.values(primary), worded.base.values(primary))


def _outcome(
    result: TaskResult,
    base: Reference,
    comparisons: tuple[stats.Comparison, ...],
    gated: frozenset[str],
    outputs: tuple[str | None, ...],
    primary: str,
    metrics: list[MetricScores],
) -> GateOutcome:
    return GateOutcome(
        result.task,
        result.model,
        base.label,
        comparisons,
        gated,
        sum(o is None for o in outputs),
        base.failed,
        primary=primary,
        identical=sum(o is not None and o == b for o, b in zip(outputs, base.outputs, strict=True)),
        n=len(outputs),
        kind=base.kind,
        floor_ceiling=floor_or_ceiling(next((m for m in metrics if m.spec.name == primary), None)),
    )


FLOOR_SHARE = 0.95  # "almost every sample"


def floor_or_ceiling(metric: MetricScores | None) -> str | None:
    """A note when model and base both score 0 (or both 1) on at least FLOOR_SHARE of the pairs: such a comparison
    measures nothing at this size, whatever its interval says (both at accuracy 0, CI [0, 0], is "non-inferior")."""
    if metric is None or not len(metric.model):
        return None
    for value, where in ((0.0, "floor"), (1.0, "ceiling")):
        both = sum(m == value and b == value for m, b in zip(metric.model, metric.base, strict=True))
        if both >= FLOOR_SHARE * len(metric.model):
            return (
                f"both models score {value:g} on {both} of {len(metric.model)} samples on {metric.spec.name} (the "
                f"{where}): at this size the comparison measures nothing"
            )
    return None
