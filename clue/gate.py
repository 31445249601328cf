"""The regression gate in the plugin: pair a model's per-sample scores with its reference's (its base model's, or a
stored baseline's) by sample id and hand them to the task-level decision (`clue.decision.decide`)."""

from __future__ import annotations

from dataclasses import dataclass

from clue import stats
from clue.baseline import Reference, output_hashes
from clue.config import Settings
from clue.decision import GateConfig, MetricScores, decide, task_verdict
from clue.errors import ClueError
from clue.tasks import get_task
from clue.types import TaskResult


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
    identical: int = 0  # samples whose output is the reference's, character for character
    n: int = 0
    kind: str = "model"  # what the base is: "model" (generated in this run) or "baseline" (stored scores)

    def identical_outputs(self, max_share: float) -> str | None:
        """The failure message when more than `max_share` of the outputs equal the reference's: a fine-tune whose
        adapter or weights were never applied produces its base's outputs and would pass as "non-inferior"."""
        if self.n == 0 or self.identical <= max_share * self.n:
            return None
        what = "the base" if self.kind == "model" else "the baseline"
        return (
            f"outputs identical to {what} on {self.identical} of {self.n} samples — was the adapter or the new "
            f"weights applied? (more than --clue-max-identical-share {max_share:.0%}; set it to 1 to allow)"
        )

    @property
    def regressed(self) -> list[stats.Comparison]:
        return [c for c in self.comparisons if c.metric in self.gated and c.verdict == "regressed"]

    @property
    def inconclusive(self) -> list[stats.Comparison]:
        return [c for c in self.comparisons if c.metric in self.gated and c.verdict == "inconclusive"]

    @property
    def verdict(self) -> stats.Verdict:
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
        return head

    def message(self, verdict: str | None = None) -> str:
        head = self.headline(verdict)
        lines = [c.describe() for c in self.comparisons if c.metric in self.gated]
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
    return [MetricScores(m, result.values(m.name), base.values(m.name), settings.margin_for(m)) for m in result.metrics]


def gate_config(settings: Settings, alpha: float | None = None) -> GateConfig:
    """The decision's settings; `alpha`: a sequential look's nominal level instead of --clue-alpha."""
    level = settings.alpha if alpha is None else alpha
    return GateConfig(level, settings.resamples, settings.bootstrap_seed, settings.min_samples)


def run_gate(result: TaskResult, base: Reference, settings: Settings, alpha: float | None = None) -> GateOutcome:
    """Compare every metric of `result` with the reference's, sample by sample (paired by sample id), at
    --clue-alpha or, for a sequential case, at the nominal level of the look it stopped at."""
    metrics = metric_scores(result, base, settings)
    decision = decide(metrics, gate_config(settings, alpha), result.clusters())
    outputs = output_hashes(result)
    return GateOutcome(
        result.task,
        result.model,
        base.label,
        decision.comparisons,
        decision.gated,
        sum(o is None for o in outputs),
        base.failed,
        primary=get_task(result.task).primary_metric,
        identical=sum(o is not None and o == b for o, b in zip(outputs, base.outputs, strict=True)),
        n=len(outputs),
        kind=base.kind,
    )
