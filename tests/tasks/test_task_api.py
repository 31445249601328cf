"""The task API without a run: a task lists its metrics."""

from __future__ import annotations

import pytest


def test_a_task_lists_its_metrics_without_a_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: Task.metrics needed a run's Scorers even to list names, and metric_specs() (which validates
    per-metric margins) built one and fingerprinted the BERTScore and UMLS models for it."""
    from clue.metrics.scorers import Scorers
    from clue.tasks import get_task, metric_specs, task_names

    def refuse(self: Scorers) -> dict[str, str]:
        raise AssertionError("a metric model was looked at")

    monkeypatch.setattr(Scorers, "bertscore_fingerprint", refuse)
    monkeypatch.setattr(Scorers, "umls_fingerprint", refuse)
    text = {"rouge1", "rouge2", "rougeL", "bertscore_f1", "bertscore_precision", "bertscore_recall"}
    assert {m.name for m in get_task("meqsum").metrics()} == text
    assert {m.name for m in get_task("medisumqa").metrics()} >= text | {"umls_f1"}
    assert all(get_task(name).metrics() for name in task_names())
    assert {"accuracy", "bertscore_f1", "umls_f1", "icd_exact_f1"} <= set(metric_specs())
