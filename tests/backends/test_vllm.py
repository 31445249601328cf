"""clue's vLLM backend, driven against tests/helpers/fake_vllm (vLLM's call signatures; see its README) in the main
environment: engine arguments and CPU defaults, fitting, results streamed to the store as requests finish, LoRA
adapters sharing their base weights' engine (one load), the weights probe and engine release. Plus: clue works
without vLLM installed. The real engine and server run in the vLLM tier (tiers/vllm/)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clue.errors import ConfigError
from clue.models.matrix import ModelSpec
from clue.types import ChatMessage, GenerationSettings, Prompt
from tests.helpers import REPO

FAKE = Path(__file__).parents[1] / "helpers" / "fake_vllm"

pytest_plugins = ["pytester"]


def _drop_vllm_modules() -> None:
    for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
        del sys.modules[name]


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    _drop_vllm_modules()
    monkeypatch.syspath_prepend(str(FAKE))
    import vllm

    vllm.CREATED.clear()
    yield vllm
    from clue.backends.vllm import release_all

    release_all()
    _drop_vllm_modules()


def prompts(n: int, max_new: int = 8) -> list[Prompt]:
    return [
        Prompt("t", f"s{i}", (ChatMessage("system", "Be brief."), ChatMessage("user", f"Question {i}?")), max_new)
        for i in range(n)
    ]


def adapter_dir(tmp_path: Path, rank: int) -> Path:
    """A LoRA adapter folder of the given rank: its config and (zero) weights of that rank on one q_proj, which the
    start-up check reads (clue/backends/weights.py)."""
    import numpy as np
    from safetensors.numpy import save_file

    folder = tmp_path / f"adapter-r{rank}"
    folder.mkdir()
    config = {"r": rank, "peft_type": "LORA", "target_modules": ["q_proj"]}
    (folder / "adapter_config.json").write_text(json.dumps(config))
    prefix = "base_model.model.model.layers.0.self_attn.q_proj"
    tensors = {f"{prefix}.lora_A.weight": np.zeros((rank, 64), np.float32)}
    tensors[f"{prefix}.lora_B.weight"] = np.zeros((64, rank), np.float32)
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    return folder


def test_clue_imports_and_reports_missing_vllm_without_it(tiny_model_dir: Path) -> None:
    code = "import sys, clue, clue.plugin, clue.backends; print('vllm' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
    try:
        import vllm  # noqa: F401
    except ImportError:
        pass
    else:  # pragma: no cover - a machine with vLLM installed
        pytest.skip("vLLM is installed here")
    from clue.backends.vllm import VLLMBackend

    backend = VLLMBackend(ModelSpec("m", path=str(tiny_model_dir), backend="vllm"), str(tiny_model_dir))
    with pytest.raises(ConfigError, match=r'pip install -e "\.\[vllm\]"'):
        backend.generate(prompts(1), GenerationSettings())


def test_engine_arguments_chat_call_and_records(fake_vllm: Any, tiny_model_dir: Path) -> None:
    from clue.backends.vllm import VLLMBackend

    spec = ModelSpec.of(
        "m",
        path=str(tiny_model_dir),
        backend="vllm",
        tensor_parallel_size=2,
        distributed_executor_backend="ray",
        max_model_len=512,
        dtype="bfloat16",
    )
    backend = VLLMBackend(spec, str(tiny_model_dir), {"m": spec})
    out = backend.generate(prompts(3, max_new=2), GenerationSettings(temperature=0.0, seed=7))
    (engine,) = fake_vllm.CREATED
    assert engine.args["enable_prefix_caching"] is True and engine.args["max_model_len"] == 512
    assert engine.args["tensor_parallel_size"] == 2 and engine.args["distributed_executor_backend"] == "ray"
    assert engine.args["dtype"] == "bfloat16" and "enable_lora" not in engine.args
    assert len(engine.calls) == 3 and all(c["lora_request"] is None for c in engine.calls)
    assert [c["ids"] for c in engine.calls] == [backend.chat.fit(p).ids for p in prompts(3)]  # clue's rendering
    assert [(c["params"].max_tokens, c["params"].temperature, c["params"].seed) for c in engine.calls] == [
        (2, 0.0, 7)
    ] * 3
    # on a GPU clue leaves memory and graphs to vLLM: its default share (the fake's signature default), no eager flag
    assert engine.args["gpu_memory_utilization"] == 0.92 and "enforce_eager" not in engine.args
    for prompt, g in zip(prompts(3), out, strict=True):
        expected_ids = backend.chat.count_prompt(prompt.messages)
        assert (g.text, g.prompt_tokens, g.completion_tokens, g.finish_reason) == (
            f"base:{expected_ids}",
            expected_ids,
            2,
            "length",
        )
    assert backend.loads == 1


def test_prompts_are_fitted_before_submission_and_unfittable_ones_fail(fake_vllm: Any, tiny_model_dir: Path) -> None:
    from clue.backends.vllm import VLLMBackend

    spec = ModelSpec("m", path=str(tiny_model_dir), backend="vllm", max_model_len=128)
    backend = VLLMBackend(spec, str(tiny_model_dir))
    doc = " ".join(f"line {i}: seen in clinic." for i in range(100))
    long = Prompt("t", "long", (ChatMessage("user", f"Read:\n{doc}\nAnswer."),), 8, doc)
    stuck = Prompt("t", "stuck", (ChatMessage("user", "instructions " * 200),), 8, None)
    fitted, failed = backend.generate([long, stuck], GenerationSettings())
    assert fitted.truncated_tokens > 0 and fitted.prompt_tokens <= 128 - 8 and fitted.error is None
    assert failed.finish_reason == "error" and "nothing may be shortened" in str(failed.error)
    (call,) = fake_vllm.CREATED[0].calls
    assert "[...]" in backend.chat.tokenizer.decode(call["ids"])


def test_each_result_streams_to_the_store_while_the_engine_runs(fake_vllm: Any, tiny_model_dir: Path) -> None:
    """Before: prompts went to `LLM.chat` in chunks of 256 and a chunk's results reached the store (and the progress
    line) only when the whole chunk was done: "1/398 prompts" for minutes. Now each result is handed on as its
    request finishes, after the start signal."""
    from clue.backends.vllm import VLLMBackend

    spec = ModelSpec("m", path=str(tiny_model_dir), backend="vllm")
    backend = VLLMBackend(spec, str(tiny_model_dir))
    events: list[tuple[str, int]] = []

    def engine_queue() -> int:
        return len(fake_vllm.CREATED[0].llm_engine.queue)

    backend.generate(
        prompts(5),
        GenerationSettings(),
        on_result=lambda i, g: events.append((f"result {i}", engine_queue())),
        on_start=lambda: events.append(("start", -1)),
    )
    assert events == [("start", -1)] + [(f"result {i}", 4 - i) for i in range(5)]  # requests still queued


def test_an_interrupted_generation_aborts_its_requests(fake_vllm: Any, tiny_model_dir: Path) -> None:
    """Ctrl-C (or a store error) mid-run: the unfinished requests are aborted, so a shared engine is left idle."""
    from clue.backends.vllm import VLLMBackend

    spec = ModelSpec("m", path=str(tiny_model_dir), backend="vllm")
    backend = VLLMBackend(spec, str(tiny_model_dir))

    def stop(i: int, _: Any) -> None:
        if i == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        backend.generate(prompts(4), GenerationSettings(), on_result=stop)
    engine = fake_vllm.CREATED[0].llm_engine
    assert engine.aborted == ["m-2", "m-3"] and not engine.queue


def test_on_a_cpu_the_engine_gets_a_kv_cache_and_eager_mode_unless_the_entry_says(
    fake_vllm: Any, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clue.backends.vllm import CPU_KV_CACHE_BYTES, VLLMBackend, release_all

    monkeypatch.setenv("FAKE_VLLM_CPU", "1")
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    cases: list[tuple[dict[str, Any], dict[str, Any]]] = [
        # 0.92: vLLM's default share, unused when the KV cache's size is given
        ({}, {"kv_cache_memory_bytes": CPU_KV_CACHE_BYTES, "enforce_eager": True, "gpu_memory_utilization": 0.92}),
        (
            {"gpu_memory_utilization": 0.3, "enforce_eager": False},
            {"gpu_memory_utilization": 0.3, "enforce_eager": False},
        ),
        (
            {"kv_cache_memory_bytes": 1 << 30},
            {"kv_cache_memory_bytes": 1 << 30, "enforce_eager": True, "gpu_memory_utilization": 0.92},
        ),
    ]
    for keys, expected in cases:
        spec = ModelSpec.of("m", path=str(tiny_model_dir), backend="vllm", **keys)
        VLLMBackend(spec, str(tiny_model_dir)).generate(prompts(1), GenerationSettings())
        args = fake_vllm.CREATED[-1].args
        chosen = {k: args[k] for k in ("kv_cache_memory_bytes", "gpu_memory_utilization", "enforce_eager") if k in args}
        assert chosen == expected, keys
        release_all()
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "8")  # vLLM's own variable: clue leaves the size to it
    VLLMBackend(ModelSpec("m", path=str(tiny_model_dir), backend="vllm"), str(tiny_model_dir)).generate(
        prompts(1), GenerationSettings()
    )
    assert "kv_cache_memory_bytes" not in fake_vllm.CREATED[-1].args


def test_an_engine_that_cannot_start_names_the_key_to_change(
    fake_vllm: Any, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clue.backends.vllm import POOL, VLLMBackend

    monkeypatch.setattr(fake_vllm, "FAIL_ABOVE_KV_BYTES", 1 << 20)
    for cpu, key in (("1", "kv_cache_memory_bytes"), ("0", "gpu_memory_utilization")):
        monkeypatch.setenv("FAKE_VLLM_CPU", cpu)
        spec = ModelSpec.of("big", path=str(tiny_model_dir), backend="vllm", kv_cache_memory_bytes=1 << 30)
        with pytest.raises(ConfigError) as caught:
            VLLMBackend(spec, str(tiny_model_dir)).generate(prompts(1), GenerationSettings())
        message = str(caught.value)
        assert message.startswith("model 'big': vLLM could not start its engine (ValueError: Available memory")
        assert f"set {key}" in message and "[models.big]" in message
        assert POOL.engine is None


def test_the_weights_probe_is_per_adapter_on_the_shared_engine(
    fake_vllm: Any, tiny_model_dir: Path, tmp_path: Path
) -> None:
    from clue.backends.vllm import VLLMBackend

    a, b = adapter_dir(tmp_path, 8), tmp_path / "second"
    import shutil

    shutil.copytree(a, b)
    base = ModelSpec("base", path=str(tiny_model_dir), backend="vllm")
    one = ModelSpec("one", path=str(tiny_model_dir), backend="vllm", adapter=str(a), base="base")
    two = ModelSpec("two", path=str(tiny_model_dir), backend="vllm", adapter=str(b), base="base")
    peers = {"base": base, "one": one, "two": two}
    digests = [VLLMBackend(s, str(tiny_model_dir), peers).probe() for s in (base, one, two, base)]
    assert len(set(digests[:3])) == 3 and digests[3] == digests[0]
    assert len(fake_vllm.CREATED) == 1 and fake_vllm.CREATED[0].args["max_loras"] == 2
    assert all(c["params"].logprobs == 20 and c["params"].max_tokens == 1 for c in fake_vllm.CREATED[0].calls)


def test_lora_entry_shares_the_base_engine_one_load(fake_vllm: Any, tiny_model_dir: Path, tmp_path: Path) -> None:
    from clue.backends.vllm import POOL, VLLMBackend

    adapter = adapter_dir(tmp_path, rank=12)
    base = ModelSpec("base", path=str(tiny_model_dir), backend="vllm")
    tuned = ModelSpec("tuned", path=str(tiny_model_dir), backend="vllm", adapter=str(adapter), base="base")
    other = ModelSpec("other", path=str(tmp_path / "elsewhere"), backend="vllm")
    peers = {"base": base, "tuned": tuned, "other": other}

    first = VLLMBackend(base, str(tiny_model_dir), peers)
    base_out = first.generate(prompts(2), GenerationSettings())
    first.close()  # kept: "tuned" runs on the same weights
    second = VLLMBackend(tuned, str(tiny_model_dir), peers)
    tuned_out = second.generate(prompts(2), GenerationSettings())
    (engine,) = fake_vllm.CREATED
    assert engine.args["enable_lora"] is True and engine.args["max_lora_rank"] == 16
    assert (first.loads, second.loads) == (1, 0)
    lora = engine.calls[2]["lora_request"]
    assert (lora.lora_name, lora.lora_path) == ("tuned", str(adapter)) and lora.lora_int_id >= 1
    assert [g.text.split(":")[0] for g in base_out + tuned_out] == ["base", "base", "tuned", "tuned"]
    second.close()
    assert POOL.engine is not None  # still shared by the pair; released at session end
    from clue.backends.vllm import release_all

    release_all()
    assert POOL.engine is None and not engine.alive and fake_vllm.RELEASED.count >= 1


def test_an_engine_nobody_shares_is_released_on_close(fake_vllm: Any, tiny_model_dir: Path) -> None:
    from clue.backends.vllm import POOL, VLLMBackend

    spec = ModelSpec("m", path=str(tiny_model_dir), backend="vllm")
    backend = VLLMBackend(spec, str(tiny_model_dir), {"m": spec})
    backend.generate(prompts(1), GenerationSettings())
    backend.close()
    assert POOL.engine is None and not fake_vllm.CREATED[0].alive


def test_adapter_fingerprint_and_rank_limits(fake_vllm: Any, tiny_model_dir: Path, tmp_path: Path) -> None:
    from clue.backends.vllm import VLLMBackend
    from clue.store.sqlite import GenerationStore

    store = GenerationStore(tmp_path / "s.sqlite3")
    plain = VLLMBackend(ModelSpec("a", path=str(tiny_model_dir), backend="vllm"), str(tiny_model_dir))
    a8 = adapter_dir(tmp_path, 8)
    tuned = VLLMBackend(ModelSpec("b", path=str(tiny_model_dir), backend="vllm", adapter=str(a8)), str(tiny_model_dir))
    assert plain.fingerprint(store)["adapter"] is None and tuned.fingerprint(store)["adapter"]
    assert plain.fingerprint(store)["files"] == tuned.fingerprint(store)["files"]
    huge = adapter_dir(tmp_path, 1024)
    with pytest.raises(ConfigError, match="above vLLM's maximum"):
        VLLMBackend(ModelSpec("c", path=str(tiny_model_dir), backend="vllm", adapter=str(huge)), str(tiny_model_dir))


def test_plugin_run_with_a_lora_entry_loads_the_engine_once(
    fake_vllm: Any, pytester: pytest.Pytester, tiny_model_dir: Path, tmp_path: Path
) -> None:
    from tests.helpers.replay_project import mednli_records, run

    (pytester.path / "data" / "mednli").mkdir(parents=True)
    (pytester.path / "data" / "mednli" / "mli_test_v1.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in mednli_records())
    )
    pytester.makepyfile(test_mednli=(REPO / "benchmarks" / "test_mednli.py").read_text())
    pytester.makeini("[pytest]\n")
    adapter = adapter_dir(tmp_path, 8)
    (pytester.path / "models.toml").write_text(
        f'[models.base]\npath = "{tiny_model_dir}"\nbackend = "vllm"\n\n'
        f'[models.tuned]\npath = "{tiny_model_dir}"\nbackend = "vllm"\nadapter = "{adapter}"\nbase = "base"\n'
    )
    result = run(pytester)
    result.stdout.fnmatch_lines(["*model loads: base 1, tuned 0*"])
    assert len(fake_vllm.CREATED) == 1
    assert "tuned" in {c["lora_request"].lora_name for c in fake_vllm.CREATED[0].calls if c["lora_request"]}


def test_sampling_params_carry_the_generation_configs_stop_ids(fake_vllm: Any, tmp_path: Path) -> None:
    """vLLM gets every eos id of generation_config.json as stop_token_ids, not only the tokenizer's."""
    from clue.backends.vllm import VLLMBackend
    from tests.helpers.standins import build_turn_end_llama

    folder = build_turn_end_llama(tmp_path / "turn-end")
    spec = ModelSpec("chat", path=str(folder), backend="vllm")
    backend = VLLMBackend(spec, str(folder), {"chat": spec})
    backend.generate(prompts(2), GenerationSettings())
    assert [c["params"].stop_token_ids for c in fake_vllm.CREATED[0].calls] == [[3, 0]] * 2  # </s> and <|end|>


def test_a_script_without_a_main_guard_is_told_what_to_do() -> None:
    """vLLM's default mode starts the engine in a spawned child, which re-imports the user's script; without a
    `__main__` guard Python stops it with a paragraph whose last line is a URL fragment. The error says what to do."""
    from clue.backends.vllm import start_error

    exc = RuntimeError(
        "\n        An attempt has been made to start a new process before the\n        current process has finished "
        "its bootstrapping phase.\n [...] section in https://docs.python.org/3/library/multiprocessing.html\n"
    )
    message = start_error("m", exc, cpu=True)
    assert 'if __name__ == "__main__":' in message and "VLLM_ENABLE_V1_MULTIPROCESSING=0" in message
