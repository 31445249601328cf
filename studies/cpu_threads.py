"""Generation time of the transformers backend on CPU by torch thread count, on an idle and on a busy machine.

    python studies/cpu_threads.py              # the embedded tiny model, 24 MeQSum-length prompts

torch uses every core for intra-op parallelism by default. On a small machine that other jobs share (a CI runner),
those threads compete with the other jobs and with each other, and generation slows down several times. This
script runs the real backend (clue.backends.transformers) on the embedded default's tiny Llama with 1, 2, ... up to
the core count threads, first alone, then next to a CPU-bound competitor process per core minus one, and prints the
times and their ratios to the 1-thread time, measured in this one run. The figures in studies/README.md and the
default of --clue-cpu-threads come from it.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from pathlib import Path


def _burn(stop: multiprocessing.synchronize.Event) -> None:
    x = 0
    while not stop.is_set():
        for i in range(100_000):
            x ^= i


def _time_generation(threads: int, model_dir: Path, prompts: int, max_new: int) -> tuple[float, int]:
    """Seconds and generated tokens for `prompts` prompts at `threads` torch threads."""
    import torch

    from clue.backends.transformers import TransformersBackend
    from clue.models.matrix import ModelSpec
    from clue.types import ChatMessage, GenerationSettings, Prompt

    torch.set_num_threads(threads)
    backend = TransformersBackend(ModelSpec("tiny", path=str(model_dir)), str(model_dir))
    words = [
        "patient",
        "chest",
        "pain",
        "diabetes",
        "metformin",
        "side",
        "effects",
        "ICD-10",
        "codes",
        "discharge",
        "summary",
    ]
    texts = [" ".join(words[(i + k) % len(words)] for k in range(60)) for i in range(prompts)]
    batch = [Prompt("t", f"s{i}", (ChatMessage("user", text),), max_new) for i, text in enumerate(texts)]
    backend.generate(batch[:2], GenerationSettings(batch_size=8))  # load weights, warm up
    began = time.perf_counter()
    out = backend.generate(batch, GenerationSettings(batch_size=8))
    return time.perf_counter() - began, sum(g.completion_tokens for g in out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    args = parser.parse_args()
    from clue.models.tiny import build_tiny_llama

    cores = os.cpu_count() or 1
    model_dir = build_tiny_llama(Path(tempfile.mkdtemp()) / "tiny", seed=0)
    counts = sorted({1, *range(2, cores + 1)})
    print(f"{cores} cores; {args.prompts} prompts, up to {args.max_new_tokens} new tokens, tiny Llama, batch 8\n")
    for label, competitors in (("idle machine", 0), (f"busy machine ({max(cores - 1, 1)} competing processes)", 1)):
        stop = multiprocessing.Event()
        burners = [multiprocessing.Process(target=_burn, args=(stop,)) for _ in range(max(cores - 1, 1) * competitors)]
        for burner in burners:
            burner.start()
        try:
            times = {n: _time_generation(n, model_dir, args.prompts, args.max_new_tokens) for n in counts}
        finally:
            stop.set()
            for burner in burners:
                burner.join()
        print(label)
        for n, (seconds, tokens) in times.items():
            rate, one = tokens / seconds, times[1][1] / times[1][0]
            print(f"  {n} thread(s): {seconds:6.1f} s, {tokens} tokens, {rate:7.0f} tokens/s", end="")
            print(f" ({rate / one:.2f} x 1 thread)")


if __name__ == "__main__":
    main()
