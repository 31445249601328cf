"""The registry: an installed package's task (entry-point group clue.tasks) is found by name and runs through
`pytest benchmarks -k <task>` with the gate and the report, like CLUE's own; unknown names are clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from clue.backends.registry import BACKENDS
from clue.errors import ConfigError
from clue.metrics.extra import METRICS
from clue.tasks import get_task
from clue.tasks.registry import TASKS
from clue.util.registry import Registry
from tests.helpers import FIXTURE_DATA, REPO, write_replay_matrix

pytest_plugins = ["pytester"]


def test_unknown_names_list_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown task 'mednil'; known tasks: mednli, meqsum"):
        get_task("mednil")
    broken: Registry[object] = Registry(
        "clue.nothing", {"x": "clue.no_such_module:Thing"}, lambda found: True, "anything"
    )
    with pytest.raises(ConfigError, match=r"thing 'x' \(clue.no_such_module:Thing, entry point group clue.nothing\)"):
        broken.load("x", "thing")
    assert TASKS.installed() == {}  # nothing installed in this environment adds a task


def test_an_installed_package_adds_a_task_that_runs_like_clues_own(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target",
         str(site), str(REPO / "tests/helpers/external_task")],
        check=True, capture_output=True,
    )  # fmt: skip
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    records = [json.loads(line) for line in (FIXTURE_DATA / "mednli/mli_test_v1.jsonl").read_text().splitlines()]
    (pytester.path / "data/hospital_nli").mkdir(parents=True)
    (pytester.path / "data/hospital_nli/hospital_nli.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    labels = ["ENTAILMENT", "NEUTRAL", "CONTRADICTION"]

    def answers(wrong_every: int) -> list[dict[str, str]]:
        out = []
        for i, r in enumerate(records):
            label = r["gold_label"].upper()
            if wrong_every and i % wrong_every == 0:
                label = labels[(labels.index(label) + 1) % 3]
            out.append({"task": "hospital_nli", "sample_id": r["pairID"], "text": f"The relation is {label}."})
        return out

    write_replay_matrix(pytester.path, {"base": answers(0), "candidate": answers(2)})
    pytester.makepyfile(test_installed_tasks=(REPO / "benchmarks/test_installed_tasks.py").read_text())
    result = pytester.runpytest_subprocess(
        "-k", "hospital_nli", "--clue-matrix", "models.toml", "--clue-data-dir", "data", "--clue-reports-dir", "out",
        "--clue-cache-dir", "cache", "-p", "no:cacheprovider",
    )  # fmt: skip
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*REGRESSED hospital_nli: model 'candidate' vs base 'base'; accuracy*"])
    record = json.loads((pytester.path / "out/results/hospital_nli/candidate.json").read_text())
    assert record["verdict"] == "regressed" and record["task_title"] == "Hospital NLI"
    assert "Hospital NLI" in (pytester.path / "out/summary.md").read_text()
    assert records[5]["pairID"] not in (pytester.path / "out/clue-results.json").read_text()  # hashed like MedNLI


@pytest.mark.parametrize(
    ("registry", "target", "expected"),
    [
        (TASKS, "clue.version:__version__", "not a subclass of clue.tasks.base.Task"),
        (BACKENDS, "clue.tasks.mednli:MedNLI", "not a backend class"),
        (METRICS, "clue.metrics.extra:installed", "not a clue.metrics.extra.ExtraMetric"),
    ],
)
def test_an_entry_naming_the_wrong_object_is_refused_when_loaded(
    registry: Registry[object], target: str, expected: str
) -> None:
    """Registry.load checks what it loaded: an entry point naming a string, a task class as a backend or a
    function as a metric is a ConfigError naming the entry, not an AttributeError later in a run."""
    wrong: Registry[object] = Registry(registry.group, {"wrong": target}, registry.accepts, registry.expected)
    with pytest.raises(ConfigError, match=rf"thing 'wrong' \({target}, entry point group .*\): is .*, {expected}"):
        wrong.load("wrong", "thing")
