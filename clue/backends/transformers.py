"""Hugging Face transformers backend: the CPU / test path, and a fallback on GPU when vLLM is not installed.

AutoTokenizer + AutoModelForCausalLM, the model's own chat template (or an override), greedy by default. Each
prompt runs alone: no padding, so a prompt's output is a function of the prompt and never of what else happened to
be generated with it (left-padded batches changed greedy outputs with their neighbours' lengths), and a finished
generation reaches the store at once instead of waiting for the slowest row of its batch. What batching would buy
on a CPU comes back from the shared prefix: the system prompt and few-shot turns before a prompt's last user turn
are computed once per distinct prefix and their key/value cache reused (the same computation for every prompt with
that prefix, so reuse changes no output). Prompts longer than the context are fitted by shortening the task's
document (the `truncatable` text of the last user turn), never the system prompt or few-shot turns; the number of
tokens removed is recorded per sample.

Nothing heavy happens for stored work: constructing the backend imports no torch and loads no tokenizer; the
fingerprint of a local model is memoised in the store (keyed by its files' hashes, the engine versions and the
machine's GPU devices), so a run whose generations are all stored loads nothing.
"""

from __future__ import annotations

import copy
import hashlib
import os
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from clue.backends.base import failed_generation
from clue.backends.chat import PROBE_PROMPTS, ChatTokenizer, Fitted, check_template, fit_all
from clue.backends.targets import fit_targets, score_each
from clue.backends.weights import check_weights, locate
from clue.errors import ConfigError
from clue.models.matrix import ModelSpec
from clue.store.fingerprint import file_sha256, folder_fingerprint, location_fingerprint, memo_key, package_version
from clue.store.sqlite import GenerationStore, canonical
from clue.types import (
    ChatMessage,
    Generation,
    GenerationSettings,
    Prompt,
    ScoredTargets,
    TargetRequest,
    TargetScore,
)

# fixed text, no data set's: what the weights-took-effect check feeds every model (clue/run/session.py)
PREFIX_CACHE = 4  # distinct shared prefixes kept (a task's few-shot block; one per task of a run at a time)
MIN_PREFIX = 16  # shorter shared prefixes are not worth a cache copy
FINGERPRINT_MEMO = 1  # bump when the fingerprint's fields change


class TransformersBackend:
    in_process = True  # the data-use guard: prompts stay in this process (clue/backends/data_use.py)
    counts_from_store = True  # token counts may come from the store's memo: the tokenizer loads only on a miss
    per_sample_outputs = False
    batch_sensitive = False  # every prompt runs alone: its output never depends on other prompts

    @staticmethod
    def check(spec: ModelSpec, location: str) -> None:
        """Start-up checks that need no weights: a GGUF file's architecture and quantisation, an adapter's config,
        rank and base model (clue/backends/weights.py)."""
        check_weights(spec.name, location, spec.adapter, needs_peft=True)
        check_template(spec, location)

    def __init__(self, spec: ModelSpec, location: str):
        """Cheap: no torch, no tokenizer (see the module's docstring)."""
        self.spec, self.location = spec, location
        self.loads = 0
        self.model: Any = None
        self._chat: ChatTokenizer | None = None
        self._runtime: tuple[str, str, str] | None = None  # device, dtype, why that dtype
        self._known: dict[str, Any] | None = None  # the fingerprint and the dtype's reason, memoised or computed
        if not Path(location).exists():  # a hub id (or a typo): nothing to memoise, and it fails here if unreachable
            self.chat  # noqa: B018

    @property
    def chat(self) -> ChatTokenizer:
        if self._chat is None:
            self._chat = ChatTokenizer(self.spec, self.location)
        return self._chat

    @property
    def tokenizer(self) -> Any:
        return self.chat.tokenizer

    @property
    def context(self) -> int:
        return int(self._known["fingerprint"]["context"]) if self._known else self.chat.context

    @property
    def _torch(self) -> Any:
        import torch

        return torch

    @property
    def device(self) -> str:
        return self._resolved()[0]

    @property
    def dtype(self) -> str:
        return self._resolved()[1]

    def _resolved(self) -> tuple[str, str, str]:
        """The device, the dtype the weights run in and why: needs torch and the config, so found once, when the
        fingerprint is not memoised or the model is needed."""
        if self._runtime is None:
            device = "cuda" if self._torch.cuda.is_available() else "cpu"
            dtype, reason = resolve_dtype(self.spec.dtype, self.chat.config_dtype, device)
            if self.spec.dtype == "auto" and device == "cpu" and self.chat.config_dtype not in (None, dtype):
                warnings.warn(DtypeNotice(f"model {self.spec.name!r}: {reason}"), stacklevel=3)
            self._runtime = (device, dtype, reason)
        return self._runtime

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
                model = apply_adapter(self.spec, self.location, model)
            self.model = model.to(self.device).eval()
            self.loads += 1
            known = self._known["fingerprint"] if self._known else None
            if known and (known["device"], known["dtype"]) != (self.device, self.dtype):
                raise ConfigError(  # the store keys of this run were computed from the memoised facts
                    f"model {self.spec.name!r}: the stored fingerprint says {known['dtype']} on {known['device']}, "
                    f"this process runs {self.dtype} on {self.device}; set dtype in the entry to pin it"
                )
        return self.model

    def fingerprint(self, store: GenerationStore) -> dict[str, Any]:
        """What identifies this model's outputs, without loading weights: file hashes for a local folder or GGUF
        file (cached by size and mtime), the revision for a hub id, the adapter's file hashes; plus tokenizer/chat
        template, context, the dtype the weights run in and engine. For a local model it is memoised in the store
        under everything it is computed from that can be read without torch (`fingerprint_memo_key`), so a fully
        stored run loads no tokenizer; a hub id is computed each time (the hub's files can change under one name)."""
        if self._known is None:
            files = {
                "files": location_fingerprint(self.location, self.spec.revision, store),
                "adapter": folder_fingerprint(Path(self.spec.adapter), store) if self.spec.adapter else None,
            }
            key = fingerprint_memo_key(self.spec, self.location, store, files) if Path(self.location).exists() else None
            found = store.memo_get([key]).get(key) if key else None
            if isinstance(found, dict) and isinstance(found.get("fingerprint"), dict):
                self._known = found
            else:
                computed = computed_fingerprint(self.spec, self.chat, files, *self._resolved()[:2])
                self._known = {"fingerprint": computed, "dtype_reason": self._resolved()[2]}
                if key:
                    store.memo_put({key: self._known})
        return dict(self._known["fingerprint"])

    def probe(self) -> str:
        """sha256 of the next-token logits on PROBE_PROMPTS, bit for bit: two models with the same digest compute
        the same function (an adapter or new weights that changed nothing), while a dtype conversion or a real
        fine-tune changes the logits even where the greedy outputs stay the same. Loads the weights."""
        model = self._ensure_model()
        digest = hashlib.sha256()
        with self._torch.inference_mode():
            for text in PROBE_PROMPTS:
                ids = self._torch.tensor([self.chat.encode(text)], device=self.device)
                digest.update(model(input_ids=ids).logits[0, -1].float().cpu().numpy().tobytes())
        return digest.hexdigest()

    @property
    def system_folded(self) -> bool:
        return not self.spec.system_role

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
        """Each prompt alone, its shared prefix's cache reused; every generation reported as soon as it exists.
        Prompts sharing a prefix run one after another, so a task's few-shot block is computed once."""
        from tqdm.auto import tqdm

        results: dict[int, Generation] = {}
        fitted = fit_all(self.chat, prompts, results, on_result)
        if not fitted:  # every prompt failed to fit: nothing to load the weights for
            return [results[i] for i in range(len(prompts))]
        prefixes = SharedPrefixes(self.chat, self._ensure_model(), self.device)
        split = [(i, f, prefixes.length(f)) for i, f in fitted]
        split.sort(key=lambda item: tuple(item[1].ids[: item[2]]))  # stable: same prefix together, input order kept
        name = desc or f"{self.spec.name}: generating"
        with tqdm(total=len(prompts), desc=name, unit="prompt", initial=len(results), leave=False) as bar:
            for i, f, cut in split:
                results[i] = self._run_one(prompts[i], f, prefixes if cut else None, cut, settings)
                if on_result:
                    on_result(i, results[i])
                bar.update(1)
        return [results[i] for i in range(len(prompts))]

    def _run_one(
        self, prompt: Prompt, fitted: Fitted, prefixes: SharedPrefixes | None, cut: int, settings: GenerationSettings
    ) -> Generation:
        """One prompt; an exception (a bad input, out of memory) becomes this sample's failure, never the run's."""
        from transformers import GenerationConfig

        torch = self._torch
        stops = list(self.chat.stop_token_ids)
        config = GenerationConfig(
            max_new_tokens=prompt.max_new_tokens,
            do_sample=not settings.greedy,
            temperature=settings.temperature if not settings.greedy else None,
            top_p=settings.top_p if not settings.greedy else None,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=stops,
        )
        began = time.perf_counter()
        try:
            if not settings.greedy:  # sampled: seeded per sample, so the draw does not depend on the run's order
                torch.manual_seed(settings.seed ^ int(hashlib.sha256(prompt.sample_id.encode()).hexdigest()[:8], 16))
            extra = {_cache_argument(): prefixes.cache(fitted.ids[:cut])} if prefixes is not None else {}
            with torch.inference_mode():
                out = self.model.generate(
                    input_ids=torch.tensor([fitted.ids], device=self.device), generation_config=config, **extra
                )
        except Exception as exc:
            return failed_generation(prompt, f"generation failed: {type(exc).__name__}: {exc}", len(fitted.ids))
        new = out[0, len(fitted.ids) :].tolist()
        end = next((k for k, token in enumerate(new) if token in stops), None)
        if end is not None:
            new = new[: end + 1]  # the stop token counts as generated, as vLLM and servers count it
        text = self.tokenizer.decode(new[:end] if end is not None else new, skip_special_tokens=True)
        return Generation(
            prompt.sample_id,
            text,
            len(fitted.ids),
            len(new),
            "stop" if end is not None else "length",
            time.perf_counter() - began,
            truncated_tokens=fitted.removed + prompt.truncated_tokens,
        )

    # -- target log-probabilities (the contamination diagnostic) ---------------------------------------------------
    def score_targets(
        self,
        requests: Sequence[TargetRequest],
        *,
        desc: str = "",
        on_result: Callable[[int, ScoredTargets], None] | None = None,
    ) -> list[ScoredTargets]:
        """Each prompt computed once, its targets scored from its key/value cache (`target_logprobs`)."""
        one = partial(score_one, self)
        return score_each(requests, one, desc=desc or f"{self.spec.name}: scoring", on_result=on_result)

    def describe(self) -> dict[str, Any]:
        """The provenance, read when the run ends: from what was loaded, or from the memoised fingerprint when
        everything came from the store (nothing is loaded for it)."""
        known = self._known["fingerprint"] if self._known else None
        if self._known and known:
            device, dtype, reason = known["device"], known["dtype"], str(self._known.get("dtype_reason", ""))
        else:
            device, dtype, reason = self._resolved()
        config_path = Path(self.location) / "config.json"
        return {
            "engine": "transformers",
            "transformers": package_version("transformers"),
            "torch": package_version("torch"),
            "device": device,
            "dtype": dtype,
            "dtype_reason": reason,
            "location": self.location,
            "gguf_file": locate(self.location, f"model {self.spec.name!r}").gguf_file,
            "adapter": self.spec.adapter,
            "peft": package_version("peft") if self.spec.adapter else None,
            "revision": self.spec.revision,
            "context": self.context,
            "system_prompt_folded_into_user_turn": self.system_folded,
            "config_sha256": file_sha256(config_path) if config_path.is_file() else None,
            "chat_template_sha256": known["chat_template"] if known else self.chat.template_sha256,
            "generation": "one prompt at a time, shared prefixes cached",
            "loads": self.loads,
        }

    def close(self) -> None:
        self.model = None
        if self._runtime is not None and self._runtime[0] == "cuda":
            self._torch.cuda.empty_cache()


def score_one(backend: TransformersBackend, request: TargetRequest) -> ScoredTargets:
    """One request's targets on the backend's model (loaded on the first call)."""
    fitted = fit_targets(backend.chat, request)
    if isinstance(fitted, str):
        return ScoredTargets((), fitted)
    try:
        return ScoredTargets(tuple(target_logprobs(backend._ensure_model(), backend.device, *fitted)))
    except Exception as exc:  # out of memory, a bad input: this sample's failure, never the run's
        return ScoredTargets((), f"scoring failed: {type(exc).__name__}: {exc}")


def target_logprobs(
    model: Any, device: str, context: Sequence[int], targets: Sequence[Sequence[int]]
) -> list[TargetScore]:
    """Log-probabilities of each target's tokens after `context`: the context once, its key/value cache repeated for
    a batch of the targets (right-padded and masked: padding after a row changes none of its logits), one forward
    pass for all of them; a target's first token is scored from the context's last logits."""
    import torch

    with torch.inference_mode():
        out = model(input_ids=torch.tensor([list(context)], device=device), use_cache=True)
        first = out.logits[0, -1].float().log_softmax(-1)
        totals = [float(first[ids[0]]) for ids in targets]
        width = max(len(ids) for ids in targets) - 1  # a target's inputs: all its tokens but the last
        if width > 0:
            cache = out.past_key_values
            cache.batch_repeat_interleave(len(targets))
            inputs = [list(ids[:-1]) + [0] * (width - len(ids) + 1) for ids in targets]
            mask = [[1] * (len(context) + len(ids) - 1) + [0] * (width - len(ids) + 1) for ids in targets]
            rest = model(
                input_ids=torch.tensor(inputs, device=device),
                attention_mask=torch.tensor(mask, device=device),
                **{_cache_argument(): cache},
            )
            logits = rest.logits.float().log_softmax(-1)
            for row, ids in enumerate(targets):
                wanted = torch.tensor(list(ids[1:]), device=device)[:, None]
                totals[row] += float(logits[row, : len(ids) - 1].gather(1, wanted).sum())
    return [TargetScore(total, len(ids)) for total, ids in zip(totals, targets, strict=True)]


class SharedPrefixes:
    """The key/value caches of prompts' shared prefixes (the chat before the last user turn: a task's system prompt
    and few-shot turns), computed once per distinct prefix and copied for each prompt that starts with it."""

    def __init__(self, chat: ChatTokenizer, model: Any, device: str):
        self.chat, self.model, self.device = chat, model, device
        self._heads: dict[tuple[ChatMessage, ...], list[int] | None] = {}  # a task's few-shot head, encoded once
        self._caches: OrderedDict[tuple[int, ...], Any] = OrderedDict()

    def length(self, fitted: Fitted) -> int:
        """How many leading tokens of the prompt are its shared prefix: the chat before the last user turn,
        rendered without a generation prompt, where that is a token prefix of the whole prompt (0 otherwise, e.g.
        a template that rejects a chat ending in an assistant turn). A function of the prompt alone."""
        if len(fitted.messages) < 2:
            return 0
        head = fitted.messages[:-1]
        if head not in self._heads:
            try:
                text = self.chat.tokenizer.apply_chat_template(
                    self.chat.chat(head), tokenize=False, add_generation_prompt=False
                )
                self._heads[head] = self.chat.encode(str(text))
            except Exception:  # templates may refuse a chat that ends with an assistant turn or a lone system turn
                self._heads[head] = None
        ids = self._heads[head]
        if ids is None:
            return 0
        cut = len(ids)
        return cut if MIN_PREFIX <= cut < len(fitted.ids) and fitted.ids[:cut] == ids else 0

    def cache(self, ids: Sequence[int]) -> Any:
        """A copy of the key/value cache of `ids` (computed once per distinct prefix, kept for PREFIX_CACHE)."""
        import torch
        from transformers import DynamicCache

        key = tuple(ids)
        if key not in self._caches:
            cache = DynamicCache()
            with torch.inference_mode():
                self.model(input_ids=torch.tensor([list(ids)], device=self.device), **{_cache_argument(): cache})
            self._caches[key] = cache
            while len(self._caches) > PREFIX_CACHE:
                self._caches.popitem(last=False)
        self._caches.move_to_end(key)
        return copy.deepcopy(self._caches[key])


def apply_adapter(spec: ModelSpec, location: str, model: Any) -> Any:
    """The LoRA adapter on the loaded base weights (peft), unmerged, as vLLM applies it."""
    try:
        from peft import PeftModel
    except ImportError:
        raise ConfigError(
            f'model {spec.name!r}: adapter {spec.adapter}: loading it needs peft: pip install "peft>=0.13"'
        ) from None
    try:
        with warnings.catch_warnings():  # peft calls a transformers property deprecated in 5.x: noise to users
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
            return PeftModel.from_pretrained(model, str(spec.adapter), is_trainable=False)
    except Exception as exc:  # target modules missing in the base, shape mismatches: peft raises several kinds
        raise ConfigError(
            f"model {spec.name!r}: adapter {spec.adapter} does not fit the weights at {location}: "
            f"{type(exc).__name__}: {exc}"
        ) from None


def computed_fingerprint(
    spec: ModelSpec, chat: ChatTokenizer, files: dict[str, Any], device: str, dtype: str
) -> dict[str, Any]:
    """The fingerprint as computed when no memo holds it (it needs torch and the tokenizer)."""
    return {
        "engine": f"transformers {package_version('transformers')}",
        "torch": package_version("torch"),
        "device": device,
        "files": files["files"],
        "adapter": files["adapter"],
        "revision": spec.revision,
        "dtype": dtype,
        "context": chat.context,
        "chat_template": chat.template_sha256,
        "system_role": spec.system_role,
        "stop_token_ids": list(chat.stop_token_ids),
    }


def fingerprint_memo_key(spec: ModelSpec, location: str, store: GenerationStore, files: dict[str, Any]) -> str:
    """Everything the fingerprint is derived from that needs no torch: the entry, the files, engine versions, the
    CPU's bfloat16 support (dtype "auto") and the GPUs this process may see (the device)."""
    gpus = sorted(p.name for p in Path("/dev").glob("nvidia[0-9]*")) if Path("/dev").is_dir() else []
    inputs = {
        "entry": spec.describe(),
        "location": location,
        **files,
        "chat_template": file_sha256(Path(spec.chat_template), store) if spec.chat_template else None,
        "versions": [package_version(p) for p in ("transformers", "torch", "tokenizers", "peft", "gguf")],
        "gpus": [gpus, os.environ.get("CUDA_VISIBLE_DEVICES")],
        "cpu_bf16": cpu_has_native_bf16(),
    }
    return memo_key({"transformers_fingerprint": FINGERPRINT_MEMO}, canonical(inputs))


def _cache_argument() -> str:
    """generate()'s name for a prefilled cache: `cache` where transformers renamed it (5.x warns about the old
    name), `past_key_values` before."""
    from transformers.utils import generic

    return "cache" if hasattr(generic, "_rename_kwargs_for_bc") else "past_key_values"


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
