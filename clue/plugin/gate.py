"""The regression gate in the plugin: pair a model's per-sample scores with its base model's by sample id and hand
them to the task-level decision (`clue.decision.decide`)."""

from __future__ import annotations

from dataclasses import dataclass

from clue import stats
from clue.decision import GateConfig, MetricScores, decide, task_verdict
from clue.errors import ClueError
from clue.plugin.options import Settings
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

    @property
    def regressed(self) -> list[stats.Comparison]:
        return [c for c in self.comparisons if c.metric in self.gated and c.verdict == "regressed"]

    @property
    def inconclusive(self) -> list[stats.Comparison]:
        return [c for c in self.comparisons if c.metric in self.gated and c.verdict == "inconclusive"]

    @property
    def verdict(self) -> stats.Verdict:
        return task_verdict(self.comparisons, self.gated)

    def message(self) -> str:
        head = f"{self.task}: model {self.model!r} vs base {self.base!r}"
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
        result.task, result.model, base.model, decision.comparisons, decision.gated, failed[0], failed[1]
    )
