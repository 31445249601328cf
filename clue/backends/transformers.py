"""Hugging Face transformers backend: the CPU / test path, and a fallback on GPU when vLLM is not installed.

AutoTokenizer + AutoModelForCausalLM, the model's own chat template (or an override), batched generation with
left padding, greedy by default. Prompts longer than the context are fitted by shortening the task's document
(the `truncatable` text of the last user turn), never the system prompt or few-shot turns; the number of tokens
removed is recorded per sample.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from clue.backends.base import failed_generation
from clue.backends.chat import ChatTokenizer, check_template, fit_all
from clue.backends.weights import check_weights
from clue.errors import ConfigError
from clue.fingerprint import file_sha256, folder_fingerprint, location_fingerprint, package_version
from clue.models import ModelSpec
from clue.store import GenerationStore
from clue.types import Generation, GenerationSettings, Prompt

# fixed text, no data set's: what the weights-took-effect check feeds every model (clue/session.py)
PROBE_PROMPTS = (
    "The patient is a 67 year old man who presented with",
    "Discharge diagnosis:",
    "Question: What are the side effects of metformin?\nAnswer:",
)


class TransformersBackend:
    per_sample_outputs = False
    batch_sensitive = True  # left padding changes greedy outputs in float16/bfloat16

    @staticmethod
    def check(spec: ModelSpec, location: str) -> None:
        """Start-up checks that need no weights: a GGUF file's architecture and quantisation, an adapter's config,
        rank and base model (clue/backends/weights.py)."""
        check_weights(spec.name, location, spec.adapter, needs_peft=True)
        check_template(spec, location)

    def __init__(self, spec: ModelSpec, location: str):
        """Loads the tokenizer and config only; weights load on the first prompt that is not in the store."""
        import torch

        self.spec, self.location = spec, location
        self.loads = 0
        self.model: Any = None
        self.chat = ChatTokenizer(spec, location)
        self.tokenizer = self.chat.tokenizer
        self.context = self.chat.context
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.dtype, self.dtype_reason = resolve_dtype(spec.dtype, self.chat.config_dtype, self.device)
        if spec.dtype == "auto" and self.device == "cpu" and self.chat.config_dtype not in (None, self.dtype):
            warnings.warn(DtypeNotice(f"model {spec.name!r}: {self.dtype_reason}"), stacklevel=2)
        self._torch = torch

    def _ensure_model(self) -> Any:
        if self.model is None:
            from transformers import AutoModelForCausalLM

            weights = self.chat.weights
            try:
                model = AutoModelForCausalLM.from_pretrained(
                    weights.location, dtype=getattr(self._torch, self.dtype), **self.chat.common
                )
            except (OSError, ValueError) as exc:
                raise ConfigError(
                    f"model {self.spec.name!r}: cannot load weights from {self.location}: {exc}"
                ) from None
            if self.spec.adapter:
                model = self._apply_adapter(model)
            self.model = model.to(self.device).eval()
            self.loads += 1
        return self.model

    def _apply_adapter(self, model: Any) -> Any:
        """The LoRA adapter on the loaded base weights (peft), unmerged, as vLLM applies it."""
        try:
            from peft import PeftModel
        except ImportError:
            raise ConfigError(
                f"model {self.spec.name!r}: adapter {self.spec.adapter}: loading it needs peft: "
                'pip install "peft>=0.13"'
            ) from None
        try:
            with warnings.catch_warnings():  # peft calls a transformers property deprecated in 5.x: noise to users
                warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
                return PeftModel.from_pretrained(model, str(self.spec.adapter), is_trainable=False)
        except Exception as exc:  # target modules missing in the base, shape mismatches: peft raises several kinds
            raise ConfigError(
                f"model {self.spec.name!r}: adapter {self.spec.adapter} does not fit the weights at {self.location}: "
                f"{type(exc).__name__}: {exc}"
            ) from None

    def fingerprint(self, store: GenerationStore) -> dict[str, Any]:
        """What identifies this model's outputs, without loading weights: file hashes for a local folder or GGUF
        file (cached by size and mtime), the revision for a hub id, the adapter's file hashes; plus tokenizer/chat
        template, context, the dtype the weights run in and engine."""
        return {
            "engine": f"transformers {package_version('transformers')}",
            "torch": package_version("torch"),
            "device": self.device,
            "files": location_fingerprint(self.location, self.spec.revision, store),
            "adapter": folder_fingerprint(Path(self.spec.adapter), store) if self.spec.adapter else None,
            "revision": self.spec.revision,
            "dtype": self.dtype,
            "context": self.context,
            "chat_template": self.chat.template_sha256,
            "system_role": self.spec.system_role,
            "stop_token_ids": list(self.chat.stop_token_ids),
        }

    def probe(self) -> str:
        """sha256 of the next-token logits on PROBE_PROMPTS, bit for bit: two models with the same digest compute
        the same function (an adapter or new weights that changed nothing), while a dtype conversion or a real
        fine-tune changes the logits even where the greedy outputs stay the same. Loads the weights."""
        import hashlib

        model = self._ensure_model()
        digest = hashlib.sha256()
        with self._torch.inference_mode():
            for text in PROBE_PROMPTS:
                ids = self._torch.tensor([self.chat.encode(text)], device=self.device)
                digest.update(model(input_ids=ids).logits[0, -1].float().cpu().numpy().tobytes())
        return digest.hexdigest()

    @property
    def system_folded(self) -> bool:
        return self.chat.system_folded

    def token_counter(self) -> ChatTokenizer:
        return self.chat

    def fit(self, prompt: Prompt) -> tuple[list[int], int, str | None]:
        """Token ids that fit `context - max_new_tokens`, the number of document tokens removed, or an error."""
        fitted = self.chat.fit(prompt)
        return fitted.ids, fitted.removed, fitted.error

    # -- generation -------------------------------------------------------------------------------------------
    def generate(
        self,
        prompts: Sequence[Prompt],
        settings: GenerationSettings,
        *,
        desc: str = "",
        on_result: Callable[[int, Generation], None] | None = None,
    ) -> list[Generation]:
        from tqdm.auto import tqdm
        from transformers import GenerationConfig

        torch = self._torch
        results: dict[int, Generation] = {}
        fitted = [(i, f.ids, f.removed) for i, f in fit_all(self.chat, prompts, results, on_result)]
        if fitted:
            self._ensure_model()  # not for prompts that all failed to fit
        torch.manual_seed(settings.seed)
        # longest first within each max_new_tokens group: padding stays small, memory errors surface early
        fitted.sort(key=lambda item: (prompts[item[0]].max_new_tokens, -len(item[1])))
        stops = list(self.chat.stop_token_ids)
        with tqdm(
            total=len(prompts),
            desc=desc or f"{self.spec.name}: generating",
            unit="prompt",
            initial=len(results),
            leave=False,
        ) as bar:
            start = 0
            while start < len(fitted):
                max_new = prompts[fitted[start][0]].max_new_tokens
                batch = [
                    item
                    for item in fitted[start : start + settings.batch_size]
                    if prompts[item[0]].max_new_tokens == max_new
                ]
                start += len(batch)
                config = GenerationConfig(
                    max_new_tokens=max_new,
                    do_sample=not settings.greedy,
                    temperature=settings.temperature if not settings.greedy else None,
                    top_p=settings.top_p if not settings.greedy else None,
                    pad_token_id=self.tokenizer.pad_token_id,
                    eos_token_id=stops,
                )
                for i, generation in self._run_batch(batch, prompts, config):
                    results[i] = generation
                    if on_result:
                        on_result(i, generation)
                bar.update(len(batch))
        return [results[i] for i in range(len(prompts))]

    def _run_batch(
        self, batch: list[tuple[int, list[int], int]], prompts: Sequence[Prompt], config: Any
    ) -> list[tuple[int, Generation]]:
        """Generate one batch. If it raises (a bad input, out of memory), its prompts are retried one by one, and a
        prompt that still fails becomes a failed sample, so one bad sample never aborts the task."""
        try:
            return self._generate_batch(batch, prompts, config)
        except Exception as exc:
            if len(batch) > 1:
                return [pair for item in batch for pair in self._run_batch([item], prompts, config)]
            i, ids, _ = batch[0]
            return [(i, failed_generation(prompts[i], f"generation failed: {type(exc).__name__}: {exc}", len(ids)))]

    def _generate_batch(
        self, batch: list[tuple[int, list[int], int]], prompts: Sequence[Prompt], config: Any
    ) -> list[tuple[int, Generation]]:
        torch = self._torch
        padded = self.tokenizer.pad({"input_ids": [ids for _, ids, _ in batch]}, return_tensors="pt")
        stops = set(self.chat.stop_token_ids)
        began = time.perf_counter()
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=padded["input_ids"].to(self.device),
                attention_mask=padded["attention_mask"].to(self.device),
                generation_config=config,
            )
        latency = (time.perf_counter() - began) / len(batch)
        width = padded["input_ids"].shape[1]
        results = []
        for row, (i, ids, removed) in enumerate(batch):
            new = out[row, width:].tolist()
            end = next((k for k, token in enumerate(new) if token in stops), None)
            stopped = end is not None
            if end is not None:
                new = new[: end + 1]  # the stop token counts as generated, as vLLM and servers count it
            else:
                while new and new[-1] == self.tokenizer.pad_token_id:
                    new.pop()
            text = self.tokenizer.decode(new[:end] if stopped else new, skip_special_tokens=True)
            results.append(
                (
                    i,
                    Generation(
                        prompts[i].sample_id,
                        text,
                        len(ids),
                        len(new),
                        "stop" if stopped else "length",
                        latency,
                        truncated_tokens=removed + prompts[i].truncated_tokens,
                    ),
                )
            )
        return results

    def describe(self) -> dict[str, Any]:
        config_path = Path(self.location) / "config.json"
        return {
            "engine": "transformers",
            "transformers": package_version("transformers"),
            "torch": package_version("torch"),
            "device": self.device,
            "dtype": self.dtype,
            "dtype_reason": self.dtype_reason,
            "location": self.location,
            "gguf_file": self.chat.weights.gguf_file,
            "adapter": self.spec.adapter,
            "peft": package_version("peft") if self.spec.adapter else None,
            "revision": self.spec.revision,
            "context": self.context,
            "system_prompt_folded_into_user_turn": self.system_folded,
            "config_sha256": file_sha256(config_path) if config_path.is_file() else None,
            "chat_template_sha256": self.chat.template_sha256,
        }

    def close(self) -> None:
        self.model = None
        if self.device == "cuda":
            self._torch.cuda.empty_cache()


class DtypeNotice(UserWarning):
    """dtype = "auto" chose another dtype than the checkpoint's, and why (a CPU without native bfloat16)."""


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (x86 AVX512-BF16 or AMX, Arm BF16); without it torch emulates
    bfloat16 matmuls, measured about 8x slower than float32 on a 2-core x86 machine."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            flags.update(line.split(":", 1)[-1].split())
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def resolve_dtype(requested: str, stored: str | None, device: str) -> tuple[str, str]:
    """The dtype the weights run in and why. An explicit dtype is kept. "auto" is the checkpoint's dtype on a GPU;
    on a CPU it is float32 unless the checkpoint is bfloat16 and the CPU has native bfloat16 (float16 is slower
    than float32 on every CPU torch runs on)."""
    if requested != "auto":
        return requested, "set in the model entry"
    if device != "cpu":
        dtype = stored if stored in ("float32", "float16", "bfloat16") else "float32"
        return dtype, f"the checkpoint's dtype ({stored or 'not recorded: float32'})"
    if stored == "bfloat16" and cpu_has_native_bf16():
        return "bfloat16", "the checkpoint's dtype; this CPU has native bfloat16"
    if stored in ("bfloat16", "float16"):
        return "float32", (
            f'dtype "auto" runs this {stored} checkpoint in float32 on this CPU: it has no native {stored}, where '
            f'torch emulates it about 8x slower (set dtype = "{stored}" in the entry to force it)'
        )
    return "float32", "float32 on the CPU"
