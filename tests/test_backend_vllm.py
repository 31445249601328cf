"""clue's vLLM backend, driven against tests/fake_vllm (vLLM 0.33.0's call signatures; see its README) because the
real engine needs a GPU: engine arguments, fitting, chunked submission with streaming to the store, LoRA adapters
sharing their base weights' engine (one load), and engine release. Plus: clue works without vLLM installed."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clue.errors import ConfigError
from clue.models import ModelSpec
from clue.types import ChatMessage, GenerationSettings, Prompt

FAKE = Path(__file__).parent / "fake_vllm"

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
    (call,) = engine.calls
    assert call["n"] == 3 and call["lora_request"] is None
    assert call["chat_template"] == backend.chat.tokenizer.chat_template
    assert [(p.max_tokens, p.temperature, p.seed) for p in call["params"]] == [(2, 0.0, 7)] * 3
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
    assert call["n"] == 1 and "[...]" in call["conversations"][0][-1]["content"]


def test_chunks_stream_to_the_store_callback(
    fake_vllm: Any, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import clue.backends.vllm as backend_module

    monkeypatch.setattr(backend_module, "CHUNK", 4)
    spec = ModelSpec("m", path=str(tiny_model_dir), backend="vllm")
    backend = backend_module.VLLMBackend(spec, str(tiny_model_dir))
    seen: list[tuple[int, int]] = []
    backend.generate(
        prompts(10), GenerationSettings(), on_result=lambda i, g: seen.append((i, len(fake_vllm.CREATED[0].calls)))
    )
    assert [n for n in (c["n"] for c in fake_vllm.CREATED[0].calls)] == [4, 4, 2]
    assert seen[:4] == [(i, 1) for i in range(4)]  # the first chunk reached the callback before the second ran


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
    lora = engine.calls[1]["lora_request"]
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
    from clue.store import GenerationStore

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
    from tests.test_plugin import mednli_records, run

    (pytester.path / "data" / "mednli").mkdir(parents=True)
    (pytester.path / "data" / "mednli" / "mli_test_v1.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in mednli_records())
    )
    pytester.makepyfile(test_mednli=(Path(__file__).parents[1] / "benchmarks" / "test_mednli.py").read_text())
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
    from tests.standins import build_turn_end_llama

    folder = build_turn_end_llama(tmp_path / "turn-end")
    spec = ModelSpec("chat", path=str(folder), backend="vllm")
    backend = VLLMBackend(spec, str(folder), {"chat": spec})
    backend.generate(prompts(2), GenerationSettings())
    (call,) = fake_vllm.CREATED[0].calls
    assert [p.stop_token_ids for p in call["params"]] == [[3, 0]] * 2  # </s> and <|end|>
