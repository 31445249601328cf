"""Fake vLLM (see ../README.md): records how clue drives the engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

__version__ = "0.33.0-fake"

# EngineArgs fields clue may pass through LLM(**kwargs) (names checked against vllm 0.33.0 engine/arg_utils.py)
ENGINE_KWARGS = {
    "enable_prefix_caching",
    "max_model_len",
    "distributed_executor_backend",
    "enable_lora",
    "max_lora_rank",
    "max_loras",
}
CREATED: list[LLM] = []


@dataclass
class SamplingParams:
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    max_tokens: int | None = 16
    stop_token_ids: list[int] | None = None


class LLM:
    def __init__(
        self,
        model: str,
        *,
        tokenizer: str | None = None,
        trust_remote_code: bool = False,
        tensor_parallel_size: int = 1,
        dtype: str = "auto",
        revision: str | None = None,
        seed: int = 0,
        gpu_memory_utilization: float = 0.92,
        **kwargs: Any,
    ) -> None:
        unknown = set(kwargs) - ENGINE_KWARGS
        if unknown:
            raise TypeError(f"unexpected engine arguments {sorted(unknown)}")
        from transformers import AutoTokenizer

        self.args = {
            "model": model,
            "tokenizer": tokenizer,
            "tensor_parallel_size": tensor_parallel_size,
            "dtype": dtype,
            "revision": revision,
            "seed": seed,
            "gpu_memory_utilization": gpu_memory_utilization,
            **kwargs,
        }
        self.tok = AutoTokenizer.from_pretrained(tokenizer or model)
        self.calls: list[dict[str, Any]] = []
        self.alive = True  # the EngineCore process: only its shutdown() ends it (vLLM v1)
        self.llm_engine = SimpleNamespace(engine_core=_EngineCore(self))
        CREATED.append(self)

    def chat(
        self,
        messages: Any,
        sampling_params: Any = None,
        use_tqdm: Any = True,
        lora_request: Any = None,
        priority: Any = None,
        chat_template: str | None = None,
        chat_template_content_format: str = "auto",
        add_generation_prompt: bool = True,
        continue_final_message: bool = False,
        tools: Any = None,
        chat_template_kwargs: Any = None,
        tokenization_kwargs: Any = None,
        mm_processor_kwargs: Any = None,
    ) -> list[Any]:
        assert self.alive, "engine used after release"
        conversations = messages if messages and isinstance(messages[0], list) else [messages]
        params = sampling_params if isinstance(sampling_params, list) else [sampling_params] * len(conversations)
        self.calls.append(
            {
                "n": len(conversations),
                "lora_request": lora_request,
                "chat_template": chat_template,
                "params": params,
                "conversations": conversations,
            }
        )
        outputs = []
        for chat, p in zip(conversations, params, strict=True):
            text = self.tok.apply_chat_template(
                chat, tokenize=False, add_generation_prompt=add_generation_prompt, chat_template=chat_template
            )
            ids = self.tok(text, add_special_tokens=False)["input_ids"]
            tag = lora_request.lora_name if lora_request else "base"
            answer = [ids[-1]] * min(3, p.max_tokens)
            finish = "length" if p.max_tokens <= 3 else "stop"
            completion = SimpleNamespace(index=0, text=f"{tag}:{len(ids)}", token_ids=answer, finish_reason=finish)
            outputs.append(SimpleNamespace(prompt_token_ids=ids, outputs=[completion]))
        return outputs


class _EngineCore:
    """vLLM v1's engine-core client: `shutdown()` stops the background EngineCore process."""

    def __init__(self, owner: LLM) -> None:
        self.owner = owner

    def shutdown(self) -> None:
        self.owner.alive = False
        RELEASED.log.append("engine_core")


@dataclass
class _Released:
    count: int = 0
    log: list[str] = field(default_factory=list)


RELEASED = _Released()
