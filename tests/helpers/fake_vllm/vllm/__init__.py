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
    "kv_cache_memory_bytes",
    "enforce_eager",
}
CREATED: list[LLM] = []
FAIL_ABOVE_KV_BYTES = 1 << 62  # a test lowers it: an engine asked for more KV cache fails to start
STEP_HOOK: Any = None  # a test sets it: called with the engine before each step


@dataclass
class SamplingParams:
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    max_tokens: int | None = 16
    stop_token_ids: list[int] | None = None
    logprobs: int | None = None


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
        if kwargs.get("kv_cache_memory_bytes", 1) > FAIL_ABOVE_KV_BYTES:
            raise ValueError("Available memory on node 0 (8.67/10.21 GiB) on kv cache allocation is less than ...")
        self.tok = AutoTokenizer.from_pretrained(tokenizer or model)
        self.calls: list[dict[str, Any]] = []  # one per request: its prompt ids, params and LoRA request
        self.alive = True  # the EngineCore process: only its shutdown() ends it (vLLM v1)
        self.llm_engine = _LLMEngine(self)
        CREATED.append(self)


class _LLMEngine:
    """vLLM v1's LLMEngine: `add_request`, `step`, `has_unfinished_requests`, `abort_request` (signatures of 0.33.0).
    Each `step` finishes one request, so results stream as a real engine's do; `RUNNING` lists what is unfinished."""

    def __init__(self, owner: LLM) -> None:
        self.owner = owner
        self.engine_core = _EngineCore(owner)
        self.queue: list[tuple[str, list[int], SamplingParams, Any]] = []
        self.aborted: list[str] = []

    def add_request(
        self,
        request_id: str,
        prompt: Any,
        params: Any,
        arrival_time: float | None = None,
        lora_request: Any = None,
        tokenization_kwargs: Any = None,
        trace_headers: Any = None,
        priority: int = 0,
        prompt_text: str | None = None,
    ) -> None:
        assert self.owner.alive, "engine used after release"
        ids = list(prompt["prompt_token_ids"])
        self.owner.calls.append({"request_id": request_id, "ids": ids, "params": params, "lora_request": lora_request})
        self.queue.append((request_id, ids, params, lora_request))

    def has_unfinished_requests(self) -> bool:
        return bool(self.queue)

    def abort_request(self, request_ids: list[str], internal: bool = False) -> None:
        self.aborted += request_ids
        self.queue = [q for q in self.queue if q[0] not in request_ids]

    def step(self) -> list[Any]:
        if STEP_HOOK is not None:
            STEP_HOOK(self)
        request_id, ids, p, lora = self.queue.pop(0)
        tag = lora.lora_name if lora else "base"
        answer = [ids[-1]] * min(3, p.max_tokens or 16)
        finish = "length" if (p.max_tokens or 16) <= 3 else "stop"
        logprobs = None
        if p.logprobs:  # a distribution that depends on the prompt and on the adapter's name
            salt = sum(map(ord, tag))
            logprobs = [{t: SimpleNamespace(logprob=-float((t * 7 + salt) % 11)) for t in ids[-p.logprobs :]}]
        completion = SimpleNamespace(
            index=0, text=f"{tag}:{len(ids)}", token_ids=answer, finish_reason=finish, logprobs=logprobs
        )
        return [SimpleNamespace(request_id=request_id, finished=True, prompt_token_ids=ids, outputs=[completion])]


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
