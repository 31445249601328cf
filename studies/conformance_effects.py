"""The measured effect of the conformance changes of the reference's current commit (docs/conformance.md), on the
real model: SmolLM2-135M-Instruct (float32, greedy, the transformers backend), in one run.

- MedNLI: CLUE's system prompt verbatim ("recieve") against the corrected typo ("receive"): outputs that differ
  and accuracy under each; and on every output, labels found as substrings (CLUE's rule) against whole words.
- LongHealth task 1 (reduced budget): a system turn and a user turn (CLUE since the vLLM rewrite) against one user
  turn holding both (CLUE's 2024 scripts): outputs that differ, accuracy and format adherence under each.

    python studies/conformance_effects.py [--longhealth 10] [--longhealth-tokens 1024]
"""

from __future__ import annotations

import argparse
import re
from dataclasses import replace
from pathlib import Path

from clue.backends import load_backend
from clue.models.matrix import ModelSpec
from clue.models.smollm2 import gguf_path
from clue.tasks import get_task
from clue.tasks.base import strip_reasoning
from clue.tasks.longhealth import LongHealthBase
from clue.tasks.options import TaskOptions
from clue.types import ChatMessage, GenerationSettings, Prompt

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "fixtures" / "data"
_WORDS = re.compile(r"\b(ENTAILMENT|NEUTRAL|CONTRADICTION)\b", re.IGNORECASE)


def whole_words(text: str) -> str | None:
    """The rule clue used before: labels as whole words."""
    found = {m.upper() for m in _WORDS.findall(strip_reasoning(text))}
    return found.pop() if len(found) == 1 else None


def one_turn(prompt: Prompt) -> Prompt:
    """The 2024 protocol: the system prompt and the user turn concatenated into one user turn."""
    system, user = prompt.messages
    return replace(prompt, messages=(ChatMessage("user", f"{system.content}{user.content}"),))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--longhealth", type=int, default=10, help="LongHealth task 1 prompts (default 10)")
    parser.add_argument("--longhealth-tokens", type=int, default=1024, help="LongHealth prompt budget (default 1024)")
    parser.add_argument("--cache-dir", type=Path, default=REPO / ".clue-cache")
    args = parser.parse_args()
    settings = GenerationSettings(temperature=0.0, top_p=1.0, seed=1, batch_size=1)
    gguf = gguf_path(args.cache_dir)
    backend = load_backend(ModelSpec("smollm2", path=str(gguf), dtype="float32"), args.cache_dir)

    nli = get_task("mednli")
    shots, scored = nli.split(nli.load(DATA / "mednli/mli_test_v1.jsonl"), 1)
    verbatim = nli.build_prompts(shots, scored, None)
    corrected = [
        replace(
            p, messages=(ChatMessage("system", p.messages[0].content.replace("recieve", "receive")), *p.messages[1:])
        )
        for p in verbatim
    ]
    out_a = backend.generate(verbatim, settings)
    out_b = backend.generate(corrected, settings)
    acc_a = sum(nli.score(s, g).scores["accuracy"] for s, g in zip(scored, out_a, strict=True)) / len(scored)
    acc_b = sum(nli.score(s, g).scores["accuracy"] for s, g in zip(scored, out_b, strict=True)) / len(scored)
    differ = sum(a.text != b.text for a, b in zip(out_a, out_b, strict=True))
    parse_changes = sum(
        nli.score(s, g).parsed != whole_words(g.text) for s, g in zip(scored * 2, out_a + out_b, strict=True)
    )
    print(
        f"MedNLI, {len(scored)} samples: 'recieve' vs 'receive' outputs differ on {differ}; accuracy {acc_a:.3f} "
        f"vs {acc_b:.3f}; substring vs whole-word labels change the parse of {parse_changes} of {2 * len(scored)}"
    )

    lh = get_task("longhealth_task1").configure(TaskOptions(longhealth_max_tokens=args.longhealth_tokens))
    assert isinstance(lh, LongHealthBase)
    samples = lh.load(DATA / "longhealth/benchmark_v5.json")[: args.longhealth]
    two = [lh.fit_prompt(s, backend.token_counter()) for s in samples]
    one = [one_turn(p) for p in two]
    out_two, out_one = backend.generate(two, settings), backend.generate(one, settings)
    scores_two = [lh.score(s, g).scores for s, g in zip(samples, out_two, strict=True)]
    scores_one = [lh.score(s, g).scores for s, g in zip(samples, out_one, strict=True)]
    n = len(samples)
    differ = sum(a.text != b.text for a, b in zip(out_two, out_one, strict=True))
    for name, scores in (("system + user turns", scores_two), ("one user turn", scores_one)):
        accuracy = sum(s["accuracy"] for s in scores) / n
        adherence = sum(s["format_adherence"] for s in scores) / n
        print(
            f"LongHealth task 1, {n} prompts at {args.longhealth_tokens} tokens, {name}: accuracy {accuracy:.3f}, "
            f"format adherence {adherence:.3f}"
        )
    print(f"LongHealth task 1: outputs differ on {differ} of {n}")


if __name__ == "__main__":
    main()
