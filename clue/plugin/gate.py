"""The regression gate in the plugin: pair a model's per-sample scores with its base model's by sample id and hand
them to the task-level decision (`clue.decision.decide`)."""

from __future__ import annotations

from dataclasses import dataclass

from clue import stats
from clue.decision import GateConfig, MetricScores, decide, task_verdict
from clue.errors import ClueError
from clue.plugin.options import Settings
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

    @property
    def regressed(self) -> list[stats.Comparison]:
        return [c for c in self.comparisons if c.metric in self.gated and c.verdict == "regressed"]

    @property
    def inconclusive(self) -> list[stats.Comparison]:
        return [c for c in self.comparisons if c.metric in self.gated and c.verdict == "inconclusive"]

    @property
    def verdict(self) -> stats.Verdict:
        return task_verdict(self.comparisons, self.gated)

    def headline(self) -> str:
        """One readable line: task, model, base, verdict, and the primary metric's difference with its CI."""
        head = f"{self.task}: model {self.model!r} vs base {self.base!r}: {self.verdict}"
        primary = next((c for c in self.comparisons if c.metric == self.primary), None)
        if primary is not None:
            head += (
                f"; {primary.metric} {primary.model_mean:.4f} vs {primary.base_mean:.4f}, Δ {primary.delta:+.4f}, "
                f"{primary.confidence:.0%} CI [{primary.ci_low:+.4f}, {primary.ci_high:+.4f}]"
            )
        return head

    def message(self) -> str:
        head = self.headline()
        lines = [c.describe() for c in self.comparisons if c.metric in self.gated]
        if self.failed_model or self.failed_base:
            lines.append(
                f"failed generations scored as wrong answers: model {self.failed_model}, base {self.failed_base} "
                "(see the report's degenerate-output counts; re-running retries them)"
            )
        return head + "\n  " + "\n  ".join(lines)


def run_gate(result: TaskResult, base: TaskResult, settings: Settings) -> GateOutcome:
    """Compare every metric of `result` with `base`, sample by sample (paired by sample id)."""
    ids = [s.sample_id for s in result.samples]
    base_ids = [s.sample_id for s in base.samples]
    if ids != base_ids:
        raise ClueError(
            f"{result.task}: model {result.model!r} and base {base.model!r} were scored on different samples; "
            "both must use the same data file, seed and --clue-limit"
        )
    metrics = [
        MetricScores(m, result.values(m.name), base.values(m.name), settings.margin_for(m)) for m in result.metrics
    ]
    config = GateConfig(settings.alpha, settings.resamples, settings.bootstrap_seed, settings.min_samples)
    decision = decide(metrics, config, result.clusters())
    failed = [sum(g.error is not None for g in r.generations) for r in (result, base)]
    return GateOutcome(
        result.task,
        result.model,
        base.model,
        decision.comparisons,
        decision.gated,
        failed[0],
        failed[1],
        primary=get_task(result.task).primary_metric,
    )
