"""The tasks' own knobs: one frozen section of the settings (`settings.tasks`), declared here by the tasks and passed
to each task typed (`Task.configure(options)`); each field is an option like any other (`--clue-*`, ini key,
`[tool.clue]` key, `clue.evaluate()` keyword)."""

from __future__ import annotations

from dataclasses import dataclass

from clue.util.options import TOKENS_MAX, option

__all__ = ["REFERENCE_MAX_TOKENS", "TaskOptions"]

REFERENCE_MAX_TOKENS = 8140  # CLUE's scripts/launch_scripts/run_LongHealth8k.sh: --max_len 8140


def _budget(value: int) -> str | None:
    return None if 0 <= value <= TOKENS_MAX else f"must be between 0 (the model's context only) and {TOKENS_MAX}"


@dataclass(frozen=True)
class TaskOptions:
    longhealth_max_tokens: int = option(
        REFERENCE_MAX_TOKENS,
        "LongHealth's prompt budget in tokens (system prompt, instructions, question, options and documents; the "
        "model's context still applies); the default is CLUE's run_LongHealth8k.sh; 0 = the model's context",
        metavar="TOKENS",
        check=_budget,
    )
