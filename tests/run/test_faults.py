"""Fault injection: a process killed mid-generation resumes and ends with exactly the results of an uninterrupted
run; a batch that raises only fails the samples that cannot be generated, and the gate says how many failed
samples it scored as wrong answers. (Corrupt and truncated store rows: tests/store/test_store.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clue.backends.transformers import TransformersBackend
from clue.models.matrix import ModelSpec
from clue.store.sqlite import GenerationStore
from clue.types import ChatMessage, GenerationSettings, Prompt
from tests.helpers import REPO
from tests.helpers.replay_project import answers, mednli_records, run, scored_indices

pytest_plugins = ["pytester"]

KILL_AFTER_PROMPTS = """
import os
from clue.backends.transformers import TransformersBackend

_original = TransformersBackend._run_one
_done = [0]

def _dying(self, *args, **kwargs):
    if os.environ.get("CLUE_TEST_KILL_AFTER") and _done[0] >= int(os.environ["CLUE_TEST_KILL_AFTER"]):
        os._exit(137)  # like SIGKILL / the OOM killer: no cleanup, no finally blocks
    _done[0] += 1
    return _original(self, *args, **kwargs)

TransformersBackend._run_one = _dying
"""


def test_a_killed_run_resumes_to_the_results_of_an_uninterrupted_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path
) -> None:
    (pytester.path / "data" / "mednli").mkdir(parents=True)
    (pytester.path / "data" / "mednli" / "mli_test_v1.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in mednli_records())
    )
    pytester.makepyfile(test_mednli=(REPO / "benchmarks" / "test_mednli.py").read_text())
    pytester.makeini("[pytest]\n")
    pytester.makeconftest(KILL_AFTER_PROMPTS)
    (pytester.path / "models.toml").write_text(
        f'[models.base]\npath = "{tiny_model_dir}"\n\n'
        f'[models.candidate]\npath = "{tiny_model_dir}"\ndtype = "bfloat16"\nbase = "base"\n'
    )
    common = ("--clue-limit", "24", "-k", "base")
    monkeypatch.setenv("CLUE_TEST_KILL_AFTER", "12")  # dies while generating the 13th prompt of 24
    killed = run(pytester, *common, subprocess=True)
    assert killed.ret == 137
    monkeypatch.delenv("CLUE_TEST_KILL_AFTER")
    resumed = run(pytester, *common, subprocess=True)
    resumed.stdout.fnmatch_lines(["*generations reused from the store: base 12*"])
    resumed_json = json.loads((pytester.path / "out" / "results" / "mednli" / "base.json").read_text())
    fresh = run(pytester, *common, "--clue-cache-dir", "fresh-cache", "--clue-reports-dir", "fresh", subprocess=True)
    fresh.stdout.fnmatch_lines(["*generations reused from the store: base 0*"])
    fresh_json = json.loads((pytester.path / "fresh" / "results" / "mednli" / "base.json").read_text())
    assert resumed_json["samples"] == fresh_json["samples"] and resumed_json["metrics"] == fresh_json["metrics"]
    texts = {}
    for cache in ("cache", "fresh-cache"):
        out = pytester.path / f"{cache}.jsonl"
        GenerationStore(pytester.path / cache / "generations.sqlite3").export(out, model="base", task="mednli")
        texts[cache] = sorted((r["sample_id"], r["text"]) for r in map(json.loads, out.read_text().splitlines()))
    assert texts["cache"] == texts["fresh-cache"] and len(texts["cache"]) == 24


def test_a_sample_that_makes_the_engine_raise_fails_alone(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = TransformersBackend(ModelSpec("tiny", path=str(tiny_model_dir)), str(tiny_model_dir))
    prompts = [
        Prompt("t", f"s{i}", (ChatMessage("user", f"poison {i}" if i == 2 else f"question {i}"),), 4) for i in range(5)
    ]
    poison = backend.tokenizer("poison", add_special_tokens=False)["input_ids"][0]
    model = backend._ensure_model()
    original = model.generate

    def raising(*args: object, input_ids: object, **kwargs: object) -> object:
        if poison in input_ids.tolist()[0]:  # type: ignore[attr-defined]
            raise RuntimeError("CUDA error: device-side assert triggered")
        return original(*args, input_ids=input_ids, **kwargs)

    monkeypatch.setattr(model, "generate", raising)
    out = backend.generate(prompts, GenerationSettings())
    assert [g.error is None for g in out] == [True, True, False, True, True]
    assert out[2].finish_reason == "error" and "RuntimeError: CUDA error" in str(out[2].error)


def test_the_gate_states_failed_samples_it_scored_as_wrong(pytester: pytest.Pytester) -> None:
    from tests.helpers.replay_project import write_models

    data = pytester.path / "data" / "mednli"
    data.mkdir(parents=True)
    (data / "mli_test_v1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in mednli_records()))
    pytester.makepyfile(test_mednli=(REPO / "benchmarks" / "test_mednli.py").read_text())
    pytester.makeini("[pytest]\n")
    wrong = set(scored_indices()[:12])
    write_models(pytester, base_wrong=set(), candidate_wrong=wrong)
    rows = [json.loads(line) for line in (pytester.path / "candidate.jsonl").read_text().splitlines()]
    dropped = mednli_records()[scored_indices()[20]]["pairID"]
    (pytester.path / "candidate.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows if r["sample_id"] != dropped)
    )  # the replay backend has no output for this sample: a failed generation
    result = run(pytester, "-k", "mednli")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*failed generations scored as wrong answers: model 1, base 0*"])
    assert answers(set())  # the helper still describes the full set
