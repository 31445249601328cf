"""A model's tokenizer and chat template, shared by every backend that runs a chat model.

All backends render a prompt the same way (the model's chat template or the entry's override, the system turn
folded into the first user turn for templates without a system role) and fit it to the context the same way (the
task's document is shortened, never the system prompt, few-shot turns or instructions). That is what makes a
transformers run, a vLLM run and a served run of the same model produce comparable records.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clue.backends.base import failed_generation
from clue.backends.weights import locate
from clue.errors import ConfigError
from clue.models.matrix import ModelSpec
from clue.types import ChatMessage, Generation, Prompt

TRUNCATION_MARK = " [...]"
# the weights check's prompts (a backend's `probe()`): next-token distributions on these identify the function
PROBE_PROMPTS = (
    "The patient is a 67 year old man who presented with",
    "Discharge diagnosis:",
    "Question: What are the side effects of metformin?\nAnswer:",
)


@dataclass(frozen=True)
class Fitted:
    """A prompt fitted to the context: its token ids, the (possibly shortened) chat, document tokens removed."""

    ids: list[int]
    messages: tuple[ChatMessage, ...]
    removed: int = 0
    error: str | None = None


class ChatTokenizer:
    def __init__(self, spec: ModelSpec, location: str, *, context: int | None = None):
        """Loads the tokenizer (and, unless `context` is given, the config for its context length)."""
        from transformers import AutoConfig, AutoTokenizer

        self.spec, self.location = spec, location
        local = Path(location).exists()
        # a GGUF file (or a folder holding one) loads from its folder with gguf_file=: tokenizer, config and weights
        self.weights = locate(location, f"model {spec.name!r}")
        self.common: dict[str, Any] = {
            "revision": spec.revision,
            "trust_remote_code": spec.trust_remote_code,
            "local_files_only": local,
            **self.weights.kwargs,
        }
        if not local:
            self._check_hub(spec, location)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.weights.location, **self.common)
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
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "left"
        self.config_dtype: str | None = None  # the dtype the weights are stored in, when the config says
        if context is None:
            context = spec.max_model_len
        if context is None or spec.backend == "transformers":
            try:
                config = AutoConfig.from_pretrained(self.weights.location, **self.common)
            except (OSError, ValueError) as exc:
                raise ConfigError(f"model {spec.name!r}: cannot load config from {location}: {exc}") from None
            if context is None:
                context = getattr(config, "max_position_embeddings", None) or self.tokenizer.model_max_length
            stored = getattr(config, "dtype", None)
            self.config_dtype = None if stored is None else str(stored).removeprefix("torch.")
        self.context = int(context)
        self.stop_token_ids = self._stop_token_ids()
        self.system_folded = not spec.system_role
        self._counts: dict[bytes, int] = {}
        self.render((ChatMessage("system", "s"), ChatMessage("user", "u")))  # a template error now, not mid-run

    def _check_hub(self, spec: ModelSpec, location: str) -> None:
        """One quick request must reach the hub for a hub id; if none can, the local Hugging Face cache is used
        when it has the model, else the run stops at once with what to do (transformers would first retry for
        about two minutes)."""
        from transformers import AutoTokenizer

        from clue.store.fingerprint import hub_commit

        if hub_commit(location, spec.revision) is not None:
            return
        try:
            AutoTokenizer.from_pretrained(location, **{**self.common, "local_files_only": True})
        except (OSError, ValueError):
            raise ConfigError(
                f"model {spec.name!r}: {location!r} is not a local folder, the Hugging Face hub cannot be reached "
                "(offline, a typo, or a gated model without a token), and the local hub cache does not have it. "
                "Download the model where there is network (huggingface-cli download ORG/NAME --local-dir DIR) "
                "and set path to that folder."
            ) from None
        self.common["local_files_only"] = True  # offline, but cached: load from the cache without retries

    def _stop_token_ids(self) -> tuple[int, ...]:
        """Every id that ends a turn: the tokenizer's eos and the model's `generation_config.json` eos ids.

        Chat models end a turn with their own token (Llama-3-Instruct `<|eot_id|>`, Gemma `<end_of_turn>`, Phi-3
        `<|end|>`), listed in the generation config next to the tokenizer's eos; vLLM and `vllm serve` stop on
        all of them, so every clue backend does too (a model that ignores them runs to max_new_tokens)."""
        from transformers import GenerationConfig

        ids: list[int] = []
        if self.tokenizer.eos_token_id is not None:
            ids.append(int(self.tokenizer.eos_token_id))
        common = {k: v for k, v in self.common.items() if k != "gguf_file"}  # a GGUF file holds no generation config
        try:
            config = GenerationConfig.from_pretrained(self.weights.location, **common)
        except (OSError, ValueError):  # no generation_config.json: the tokenizer's eos only
            config = None
        eos = getattr(config, "eos_token_id", None)
        for value in eos if isinstance(eos, list | tuple) else [eos]:
            if value is not None and int(value) not in ids:
                ids.append(int(value))
        return tuple(ids)

    @property
    def template_sha256(self) -> str:
        return hashlib.sha256(str(self.tokenizer.chat_template).encode()).hexdigest()

    # -- rendering ----------------------------------------------------------------------------------------------
    def chat(self, messages: Sequence[ChatMessage]) -> list[dict[str, str]]:
        """The chat as role/content dicts, the system turn merged into the first user turn for an entry with
        `system_role = false` (a template without a system role)."""
        return as_chat(messages, not self.system_folded)

    def render(self, messages: Sequence[ChatMessage]) -> str:
        chat = as_chat(messages, not self.system_folded)
        try:
            text: str = self.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
            return text
        except Exception as exc:  # jinja raises TemplateError (e.g. "roles must alternate") for system turns
            raise ConfigError(template_error(self.spec.name, exc, system=chat[0]["role"] == "system")) from None

    def encode(self, text: str) -> list[int]:
        ids: list[int] = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return ids

    # -- TokenCounter -------------------------------------------------------------------------------------------
    def count(self, text: str) -> int:
        key = hashlib.sha256(text.encode()).digest()
        if key not in self._counts:
            self._counts[key] = len(self.encode(text))
        return self._counts[key]

    def count_prompt(self, messages: tuple[ChatMessage, ...]) -> int:
        return len(self.encode(self.render(messages)))

    # -- fitting ------------------------------------------------------------------------------------------------
    def fit(self, prompt: Prompt) -> Fitted:
        """Token ids that fit `context - max_new_tokens`, shortening only the prompt's document, or an error."""
        budget = self.context - prompt.max_new_tokens
        messages = list(prompt.messages)
        if budget <= 0:
            return Fitted(
                [],
                prompt.messages,
                0,
                f"max_new_tokens={prompt.max_new_tokens} leaves no room in a context of {self.context}",
            )
        ids = self.encode(self.render(messages))
        if len(ids) <= budget:
            return Fitted(ids, prompt.messages)
        if not prompt.truncatable:
            return Fitted(
                [],
                prompt.messages,
                0,
                f"prompt has {len(ids)} tokens, over the budget of {budget}, and nothing may be shortened",
            )
        doc = prompt.truncatable
        doc_ids = self.encode(doc)
        removed = 0
        last = messages[-1]
        at = last.content.rfind(doc)
        for _ in range(4):  # re-tokenisation at the cut can shift a few tokens: retry with what is left over
            overflow = len(ids) - budget
            keep = len(doc_ids) - removed - overflow - 4
            if keep <= 0:
                return Fitted(
                    [],
                    prompt.messages,
                    0,
                    f"prompt does not fit a context of {self.context} even with an empty document "
                    "(system prompt, few-shot turns and instructions alone are too long)",
                )
            removed = len(doc_ids) - keep
            short = self.tokenizer.decode(doc_ids[:keep]) + TRUNCATION_MARK
            messages[-1] = ChatMessage(last.role, last.content[:at] + short + last.content[at + len(doc) :])
            ids = self.encode(self.render(messages))
            if len(ids) <= budget:
                return Fitted(ids, tuple(messages), removed)
        return Fitted([], prompt.messages, 0, f"could not fit the prompt into {budget} tokens")


def template_error(name: str, exc: Exception, *, system: bool) -> str:
    """The message for a chat template that raised: with a system turn, the setting that merges it away."""
    if system:
        return (
            f"model {name!r}: its chat template rejects a system turn ({exc}); set system_role = false in its "
            "matrix entry to merge the system prompt into the first user turn, as CLUE's 2024 scripts did for such "
            "models"
        )
    return f"model {name!r}: chat template failed: {exc}"


def check_template(spec: ModelSpec, location: str) -> None:
    """Start-up: render a system and a user turn with a local model's chat template (the entry's file, the
    folder's chat_template.jinja or tokenizer_config.json), without loading the tokenizer; a hub id or a GGUF
    file is checked when its tokenizer loads, still before any generation."""
    import json

    folder = Path(location)
    template: str | None = None
    if spec.chat_template:
        template = Path(spec.chat_template).read_text(encoding="utf-8")
    elif (folder / "chat_template.jinja").is_file():
        template = (folder / "chat_template.jinja").read_text(encoding="utf-8")
    elif (folder / "tokenizer_config.json").is_file():
        try:
            found = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8")).get("chat_template")
        except (OSError, ValueError):
            return  # the tokenizer's own load says what is wrong with the file
        template = found if isinstance(found, str) else None
    if not template:
        return
    try:
        from transformers.utils.chat_template_utils import _compile_jinja_template
    except ImportError:  # pragma: no cover - a transformers without it: checked when the tokenizer loads
        return
    user = "clue-start-up-check-user-turn"
    turns = (ChatMessage("system", "clue-start-up-check-system-turn"), ChatMessage("user", user))
    chat = as_chat(turns, spec.system_role)
    try:
        text = _compile_jinja_template(template).render(
            messages=chat, add_generation_prompt=True, bos_token="", eos_token=""
        )
    except Exception as exc:  # TemplateError from raise_exception, or any error the template's own code raises
        raise ConfigError(template_error(spec.name, exc, system=spec.system_role)) from None
    if user not in text:  # plain text is a valid Jinja template too: it renders, without the conversation
        where = spec.chat_template or location
        raise ConfigError(
            f"model {spec.name!r}: the chat template ({where}) does not render the conversation: a user turn rendered "
            f"as {text[:80]!r} (a chat template loops over `messages`)"
        )


def as_chat(messages: Sequence[ChatMessage], system_role: bool) -> list[dict[str, str]]:
    """The chat as a model with (or, `system_role` false, without) a system role takes it."""
    chat = as_dicts(messages)
    return chat if system_role else _fold_system(chat)


def as_dicts(messages: Sequence[ChatMessage]) -> list[dict[str, str]]:
    """The chat in the role/content form chat templates and the OpenAI API take."""
    return [{"role": m.role, "content": m.content} for m in messages]


def fit_all(
    tokenizer: ChatTokenizer,
    prompts: Sequence[Prompt],
    results: dict[int, Generation],
    on_result: Callable[[int, Generation], None] | None,
) -> list[tuple[int, Fitted]]:
    """Fit every prompt; one that cannot fit becomes a failed generation in `results` at once (and is reported
    through `on_result`); the others are returned with their index, to be run."""
    runnable = []
    for i, prompt in enumerate(prompts):
        fitted = tokenizer.fit(prompt)
        if fitted.error:
            results[i] = failed_generation(prompt, fitted.error)
            if on_result:
                on_result(i, results[i])
        else:
            runnable.append((i, fitted))
    return runnable


def _fold_system(chat: list[dict[str, str]]) -> list[dict[str, str]]:
    if not chat or chat[0]["role"] != "system" or len(chat) < 2:
        return chat
    system, first, *rest = chat
    return [{"role": first["role"], "content": f"{system['content']}\n\n{first['content']}"}, *rest]
