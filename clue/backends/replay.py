"""Replay recorded outputs instead of running a model.

`path` is a JSON Lines file of `{"task": ..., "sample_id": ..., "text": ...}` records: outputs produced
elsewhere (another harness, an API run, a colleague's GPU box) are scored and gated exactly like live ones.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from clue.errors import ConfigError, DataError
from clue.fingerprint import file_sha256
from clue.models import ModelSpec
from clue.store import GenerationStore
from clue.types import ChatMessage, Generation, GenerationSettings, Prompt


class ReplayBackend:
    @staticmethod
    def check(spec: ModelSpec, location: str) -> None:
        """Start-up: recorded outputs have no weights an adapter could change."""
        if spec.adapter:
            raise ConfigError(f"model {spec.name!r}: backend 'replay' scores recorded outputs; it takes no adapter")

    def __init__(self, spec: ModelSpec, location: str):
        self.spec, self.path = spec, Path(location)
        if not self.path.is_file():
            raise ConfigError(f"model {spec.name!r}: replay file {self.path} not found")
        self.outputs: dict[tuple[str, str], str] = {}
        for lineno, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                key = (str(record["task"]), str(record["sample_id"]))
                text = record["text"]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise DataError(
                    self.path, f"expected {{task, sample_id, text}} ({exc})", record=f"line {lineno}"
                ) from None
            if not isinstance(text, str):
                raise DataError(self.path, "expected a string", record=f"line {lineno}", field="text")
            self.outputs[key] = text

    loads = 0
    per_sample_outputs = True  # recorded per (task, sample_id): two samples with one prompt have their own outputs
    batch_sensitive = False

    def fingerprint(self, store: GenerationStore) -> dict[str, Any]:
        return {"engine": "replay", "file": file_sha256(self.path, store)}

    def generate(
        self,
        prompts: Sequence[Prompt],
        settings: GenerationSettings,
        *,
        desc: str = "",
        on_result: Callable[[int, Generation], None] | None = None,
    ) -> list[Generation]:
        if prompts:
            self.loads += 1
        results = []
        for prompt in prompts:
            text = self.outputs.get((prompt.task, prompt.sample_id))
            if text is None:
                results.append(
                    Generation(
                        prompt.sample_id,
                        "",
                        0,
                        0,
                        "error",
                        0.0,
                        error=f"no recorded output in {self.path} for {prompt.task}/{prompt.sample_id}",
                    )
                )
            else:
                results.append(
                    Generation(
                        prompt.sample_id,
                        text,
                        0,
                        len(text.split()),
                        "stop",
                        0.0,
                        truncated_tokens=prompt.truncated_tokens,
                    )
                )
            if on_result:
                on_result(len(results) - 1, results[-1])
        return results

    def token_counter(self) -> ReplayBackend:
        return self

    context = 10**9  # recorded outputs: nothing is truncated

    def count(self, text: str) -> int:
        return len(text.split())

    def count_prompt(self, messages: tuple[ChatMessage, ...]) -> int:
        return sum(self.count(m.content) for m in messages)

    def describe(self) -> dict[str, Any]:
        return {"engine": "replay", "file": str(self.path)}

    def close(self) -> None:
        self.outputs.clear()
