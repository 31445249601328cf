"""Hugging Face transformers backend: the CPU / test path, and a fallback on GPU when vLLM is not installed.

AutoTokenizer + AutoModelForCausalLM, the model's own chat template (or an override), batched generation with
left padding, greedy by default. Prompts longer than the context are fitted by shortening the task's document
(the `truncatable` text of the last user turn), never the system prompt or few-shot turns; the number of tokens
removed is recorded per sample.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from clue.cache import GenerationStore
from clue.errors import ConfigError
from clue.models import ModelSpec
from clue.types import ChatMessage, Generation, GenerationSettings, Prompt

TRUNCATION_MARK = " [...]"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "missing"


class TransformersBackend:
    def __init__(self, spec: ModelSpec, location: str):
        """Loads the tokenizer and config only; weights load on the first prompt that is not in the store."""
        import torch
        from transformers import AutoConfig, AutoTokenizer

        self.spec, self.location = spec, location
        self.loads = 0
        self.model: Any = None
        local = Path(location).exists()
        common: dict[str, Any] = {
            "revision": spec.revision,
            "trust_remote_code": spec.trust_remote_code,
            "local_files_only": local,
        }
        self._common = common
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(location, **common)
        except (OSError, ValueError) as exc:
            where = "local folder" if local else "Hugging Face id (no such local folder)"
            raise ConfigError(f"model {spec.name!r}: cannot load tokenizer from {location} ({where}): {exc}") from None
        if spec.chat_template:
            self.tokenizer.chat_template = Path(spec.chat_template).read_text(encoding="utf-8")
        if not self.tokenizer.chat_template:
            raise ConfigError(
                f"model {spec.name!r}: tokenizer at {location} has no chat template; "
                'set chat_template = "path/to/template.jinja" in its matrix entry'
            )
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            config = AutoConfig.from_pretrained(location, **common)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"model {spec.name!r}: cannot load config from {location}: {exc}") from None
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "left"
        config_len = getattr(config, "max_position_embeddings", None)
        self.context = int(spec.max_model_len or config_len or self.tokenizer.model_max_length)
        self.system_folded = False
        self._counts: dict[bytes, int] = {}
        self._torch = torch

    def _ensure_model(self) -> Any:
        if self.model is None:
            from transformers import AutoModelForCausalLM

            dtype: Any = "auto" if self.spec.dtype == "auto" else getattr(self._torch, self.spec.dtype)
            try:
                model = AutoModelForCausalLM.from_pretrained(self.location, dtype=dtype, **self._common)
            except (OSError, ValueError) as exc:
                raise ConfigError(
                    f"model {self.spec.name!r}: cannot load weights from {self.location}: {exc}"
                ) from None
            self.model = model.to(self.device).eval()
            self.loads += 1
        return self.model

    def fingerprint(self, store: GenerationStore) -> dict[str, Any]:
        """What identifies this model's outputs, without loading weights: file hashes for a local folder (cached by
        size and mtime), the revision for a hub id; plus tokenizer/chat template, context, dtype and engine."""
        folder = Path(self.location)
        files = store.folder_fingerprint(folder) if folder.is_dir() else {"hub_id": self.location}
        return {
            "engine": f"transformers {_version('transformers')}",
            "files": files,
            "revision": self.spec.revision,
            "dtype": self.spec.dtype,
            "context": self.context,
            "chat_template": hashlib.sha256(str(self.tokenizer.chat_template).encode()).hexdigest(),
        }

    # -- prompt rendering -------------------------------------------------------------------------------------
    def _render(self, messages: Sequence[ChatMessage]) -> str:
        chat = [{"role": m.role, "content": m.content} for m in messages]
        if self.system_folded:
            chat = _fold_system(chat)
        try:
            text: str = self.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
            return text
        except Exception as exc:  # jinja raises TemplateError (e.g. "roles must alternate") for system turns
            if self.system_folded or chat[0]["role"] != "system":
                raise ConfigError(f"model {self.spec.name!r}: chat template failed: {exc}") from None
            # templates without a system role: CLUE folds the system prompt into the first user turn
            self.system_folded = True
            return self._render(messages)

    def _encode(self, text: str) -> list[int]:
        ids: list[int] = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return ids

    def token_counter(self) -> TransformersBackend:
        return self

    def count(self, text: str) -> int:
        key = hashlib.sha256(text.encode()).digest()
        if key not in self._counts:
            self._counts[key] = len(self._encode(text))
        return self._counts[key]

    def count_prompt(self, messages: tuple[ChatMessage, ...]) -> int:
        return len(self._encode(self._render(messages)))

    def fit(self, prompt: Prompt) -> tuple[list[int], int, str | None]:
        """Token ids that fit `context - max_new_tokens`, the number of document tokens removed, or an error."""
        budget = self.context - prompt.max_new_tokens
        if budget <= 0:
            return (
                [],
                0,
                f"max_new_tokens={prompt.max_new_tokens} leaves no room in a context of {self.context}",
            )
        messages = list(prompt.messages)
        ids = self._encode(self._render(messages))
        if len(ids) <= budget:
            return ids, 0, None
        if not prompt.truncatable:
            return (
                [],
                0,
                f"prompt has {len(ids)} tokens, over the budget of {budget}, and nothing may be shortened",
            )
        doc = prompt.truncatable
        doc_ids = self._encode(doc)
        removed = 0
        last = messages[-1]
        at = last.content.rfind(doc)
        for _ in range(4):  # re-tokenisation at the cut can shift a few tokens: retry with what is left over
            overflow = len(ids) - budget
            keep = len(doc_ids) - removed - overflow - 4
            if keep <= 0:
                return (
                    [],
                    0,
                    (
                        f"prompt does not fit a context of {self.context} even with an empty document "
                        f"(system prompt, few-shot turns and instructions alone are too long)"
                    ),
                )
            removed = len(doc_ids) - keep
            short = self.tokenizer.decode(doc_ids[:keep]) + TRUNCATION_MARK
            messages[-1] = ChatMessage(last.role, last.content[:at] + short + last.content[at + len(doc) :])
            ids = self._encode(self._render(messages))
            if len(ids) <= budget:
                return ids, removed, None
        return [], 0, f"could not fit the prompt into {budget} tokens"

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
        if prompts:
            self._ensure_model()
        torch.manual_seed(settings.seed)
        results: dict[int, Generation] = {}
        fitted = []
        for i, prompt in enumerate(prompts):
            ids, removed, error = self.fit(prompt)
            if error:
                results[i] = Generation(
                    prompt.sample_id,
                    "",
                    len(ids),
                    0,
                    "error",
                    0.0,
                    truncated_tokens=prompt.truncated_tokens,
                    error=error,
                )
            else:
                fitted.append((i, ids, removed))
        # longest first within each max_new_tokens group: padding stays small, memory errors surface early
        fitted.sort(key=lambda item: (prompts[item[0]].max_new_tokens, -len(item[1])))
        eos = self.tokenizer.eos_token_id
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
                padded = self.tokenizer.pad({"input_ids": [ids for _, ids, _ in batch]}, return_tensors="pt")
                config = GenerationConfig(
                    max_new_tokens=max_new,
                    do_sample=not settings.greedy,
                    temperature=settings.temperature if not settings.greedy else None,
                    top_p=settings.top_p if not settings.greedy else None,
                    pad_token_id=self.tokenizer.pad_token_id,
                    eos_token_id=eos,
                )
                began = time.perf_counter()
                with torch.inference_mode():
                    out = self.model.generate(
                        input_ids=padded["input_ids"].to(self.device),
                        attention_mask=padded["attention_mask"].to(self.device),
                        generation_config=config,
                    )
                latency = (time.perf_counter() - began) / len(batch)
                width = padded["input_ids"].shape[1]
                for row, (i, ids, removed) in enumerate(batch):
                    new = out[row, width:].tolist()
                    stopped = eos in new
                    if stopped:
                        new = new[: new.index(eos)]
                    while new and new[-1] == self.tokenizer.pad_token_id:
                        new.pop()
                    text = self.tokenizer.decode(new, skip_special_tokens=True)
                    results[i] = Generation(
                        prompts[i].sample_id,
                        text,
                        len(ids),
                        len(new),
                        "stop" if stopped else "length",
                        latency,
                        truncated_tokens=removed + prompts[i].truncated_tokens,
                    )
                    if on_result:
                        on_result(i, results[i])
                bar.update(len(batch))
        return [results[i] for i in range(len(prompts))]

    def describe(self) -> dict[str, Any]:
        config_path = Path(self.location) / "config.json"
        return {
            "engine": "transformers",
            "transformers": _version("transformers"),
            "torch": _version("torch"),
            "device": self.device,
            "location": self.location,
            "revision": self.spec.revision,
            "context": self.context,
            "system_prompt_folded_into_user_turn": self.system_folded,
            "config_sha256": hashlib.sha256(config_path.read_bytes()).hexdigest() if config_path.is_file() else None,
            "chat_template_sha256": hashlib.sha256(str(self.tokenizer.chat_template).encode()).hexdigest(),
        }

    def close(self) -> None:
        self.model = None
        if self.device == "cuda":
            self._torch.cuda.empty_cache()


def _fold_system(chat: list[dict[str, str]]) -> list[dict[str, str]]:
    if not chat or chat[0]["role"] != "system" or len(chat) < 2:
        return chat
    system, first, *rest = chat
    return [{"role": first["role"], "content": f"{system['content']}\n\n{first['content']}"}, *rest]
