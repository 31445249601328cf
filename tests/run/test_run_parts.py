"""A run's parts and the records that leave it (issue 25): one task instance per case, the case carried as the
test's parameter, one run object for both front ends, typed records that refuse a malformed file by name, engines
released by the run, each sequential case decided once, and no class grown into the whole engine."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

import clue
from clue.backends.replay import ReplayBackend
from clue.statistics.decision import GateConfig, MetricScores
from clue.statistics.sequential import Look, Plan, drive, run
from clue.types import MetricSpec
from tests.helpers import REPO, write_replay_matrix
from tests.helpers.replay_project import answers, mednli_records

pytest_plugins = ["pytester"]


def test_the_run_releases_the_engines_its_backends_keep(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A backend class's `release_engines()` is called once when the run ends, from either front end. Before: the
    plugin freed vLLM's pool through sys.modules and clue.evaluate never freed anything. Without write_reports the
    run writes the baseline asked for and nothing else."""
    calls: list[str] = []
    monkeypatch.setattr(ReplayBackend, "release_engines", staticmethod(lambda: calls.append("released")), raising=False)
    (tmp_path / "data/mednli").mkdir(parents=True)
    (tmp_path / "data/mednli/mli_test_v1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in mednli_records()))
    write_replay_matrix(tmp_path, {"base": answers(set()), "candidate": answers({1})})
    done = clue.evaluate(
        ["mednli"], root=tmp_path, matrix=str(tmp_path / "models.toml"), data_dir=str(tmp_path / "data"),
        cache_dir=str(tmp_path / "cache"), reports_dir=str(tmp_path / "out"), save_baseline=str(tmp_path / "b.json"),
    )  # fmt: skip
    assert [r.case for r in done.results] == ["base", "candidate"] and calls == ["released"]
    from clue import baseline

    assert set(baseline.load(tmp_path / "b.json").entries) == {("mednli", "base"), ("mednli", "candidate")}
    assert not (tmp_path / "out").exists()


def test_each_sequential_case_is_decided_once_where_it_stops() -> None:
    """drive() judges an open case at every look and a stopped one never again; its stop is the one record of its
    decision, and on fully known scores it stops where the simulation runner (sequential.run) stops."""
    spec = MetricSpec("accuracy", "", kind="binary")
    model = [1.0] * 300
    base = [1.0] * 300
    metrics = [MetricScores(spec, model, base, 0.05)]
    config = GateConfig(0.025, 200, 1, 10)
    plan = Plan.make(300, 100, 0.025)
    judged: list[tuple[str, int]] = []
    advanced: list[int] = []

    def judge(case: str, index: int, seen: int) -> Look:
        judged.append((case, index))
        if case == "slow":
            return Look(index + 1, seen, plan.levels[index], None, index == len(plan.looks) - 1, None)
        from clue.statistics.sequential import look

        upto = advanced[-1]
        prefix = [MetricScores(m.spec, m.model[:upto], m.base[:upto], m.margin) for m in metrics]
        return look(plan, index, prefix, config)

    stops = drive(plan, None, 300, ["fast", "slow"], advanced.append, judge)
    expected = run(metrics, config, 100)
    assert stops["fast"].look == expected.index and stops["fast"].boundary == expected.boundary == "non-inferior"
    assert [i for c, i in judged if c == "fast"] == list(range(expected.index))  # never judged after its stop
    assert [i for c, i in judged if c == "slow"] == [0, 1, 2] and stops["slow"].look == 3
    assert advanced == [100, 200, 300]


def _class_lengths() -> dict[str, int]:
    out = {}
    for file in (REPO / "clue").rglob("*.py"):
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                out[f"{file.relative_to(REPO)}:{node.name}"] = (node.end_lineno or node.lineno) - node.lineno + 1
    return out


def test_no_class_is_the_whole_engine() -> None:
    """Before: ClueSession held case expansion, data, generation, the sequential loop, baselines, scoring and
    provenance in 560 lines."""
    lengths = _class_lengths()
    assert "clue/run/session.py:ClueSession" in lengths
    too_long = {name: n for name, n in lengths.items() if n > 250}
    assert not too_long, too_long
