"""Generation throughput on the real model: SmolLM2-135M-Instruct (float32, greedy), MeQSum and MeDiSumCode prompts,
three ways, interleaved, in one run:

- `before`: the transformers backend as it was until issue 24 — left-padded batches of 8, longest first, each
  batch held until its slowest row finished (re-created here with `model.generate`, the same calls);
- `after`: clue's transformers backend now — each prompt alone, the shared few-shot prefix's cache reused;
- `plain`: a per-prompt `model.generate` loop, no prefix reuse (what a user would write by hand);
- `continuous` (with `--continuous`): transformers' own continuous batching, `model.generate_batch` with paged
  attention (`paged|sdpa`), all prompts submitted at once;
- `vllm` and `served` (with `--vllm`, in the vLLM tier's environment): clue's vLLM backend on vLLM's engine, and
  clue's openai backend against `vllm serve` started here on a loopback port (four requests at a time). All ways
  then load the float32 Hugging Face folder of the same weights (vLLM on a CPU does not read the GGUF file).

Prints load times, wall time, useful tokens/s (completion tokens up to and including the stop token) and the ratios,
and whether each way's outputs are identical to `plain`'s.

    python studies/generation_throughput.py [--meqsum 16] [--medisumcode 6] [--rounds 2]
    $(bash .ci/vllm-env)/bin/python studies/generation_throughput.py --vllm --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from clue.backends import load_backend
from clue.backends.transformers import TransformersBackend
from clue.models.matrix import ModelSpec
from clue.models.smollm2 import gguf_path, hf_model
from clue.tasks import get_task
from clue.types import GenerationSettings, Prompt

REPO = Path(__file__).resolve().parents[1]
MEQSUM = REPO.parent / "shared/data/MeQSum/MeQSum_ACL2019_BenAbacha_Demner-Fushman.xlsx"
MEDISUMCODE = REPO / "fixtures/data/medisumcode/MeDiSumCode.json"


def prompts(task: str, path: Path, n: int) -> list[Prompt]:
    t = get_task(task)
    shots, scored = t.split(t.load(path), 1)
    return t.build_prompts(shots, scored[:n], None)


def _config(backend: TransformersBackend, max_new: int) -> Any:
    from transformers import GenerationConfig

    return GenerationConfig(
        max_new_tokens=max_new,
        do_sample=False,
        pad_token_id=backend.tokenizer.pad_token_id,
        eos_token_id=list(backend.chat.stop_token_ids),
    )


def _trim(backend: TransformersBackend, new: list[int]) -> tuple[str, int]:
    stops = set(backend.chat.stop_token_ids)
    end = next((k for k, t in enumerate(new) if t in stops), None)
    kept = new[: end + 1] if end is not None else [t for t in new if t != backend.tokenizer.pad_token_id]
    text = backend.tokenizer.decode(kept[:-1] if end is not None else kept, skip_special_tokens=True)
    return text, len(kept)


def before(backend: TransformersBackend, batch: Sequence[Prompt]) -> list[tuple[str, int]]:
    """Left-padded batches of 8, longest first (the pre-issue-24 code path)."""
    import torch

    ids = [(i, backend.fit(p)[0]) for i, p in enumerate(batch)]
    ids.sort(key=lambda item: -len(item[1]))
    out: dict[int, tuple[str, int]] = {}
    for start in range(0, len(ids), 8):
        group = ids[start : start + 8]
        padded = backend.tokenizer.pad({"input_ids": [x for _, x in group]}, return_tensors="pt")
        with torch.inference_mode():
            result = backend.model.generate(**padded, generation_config=_config(backend, batch[0].max_new_tokens))
        width = padded["input_ids"].shape[1]
        for row, (i, _) in enumerate(group):
            out[i] = _trim(backend, result[row, width:].tolist())
    return [out[i] for i in range(len(batch))]


def plain(backend: TransformersBackend, batch: Sequence[Prompt]) -> list[tuple[str, int]]:
    """One `generate` per prompt, the whole prompt prefilled each time."""
    import torch

    out = []
    for p in batch:
        ids = backend.fit(p)[0]
        with torch.inference_mode():
            result = backend.model.generate(torch.tensor([ids]), generation_config=_config(backend, p.max_new_tokens))
        out.append(_trim(backend, result[0, len(ids) :].tolist()))
    return out


def continuous(backend: TransformersBackend, batch: Sequence[Prompt]) -> list[tuple[str, int]]:
    """transformers' continuous batching (paged attention); the model is switched back to sdpa afterwards."""
    import torch

    ids = [backend.fit(p)[0] for p in batch]
    backend.model.set_attn_implementation("paged|sdpa")
    try:
        with torch.inference_mode():
            out = backend.model.generate_batch(
                ids, generation_config=_config(backend, batch[0].max_new_tokens), progress_bar=False
            )
    finally:
        backend.model.set_attn_implementation("sdpa")
    return [_trim(backend, list(result.generated_tokens)) for result in out.values()]


def after(backend: TransformersBackend, batch: Sequence[Prompt]) -> list[tuple[str, int]]:
    return [(g.text, g.completion_tokens) for g in backend.generate(batch, GenerationSettings())]


Way = Callable[[TransformersBackend, Sequence[Prompt]], list[tuple[str, int]]]


def engine_ways(cache_dir: Path, folder: Path) -> tuple[dict[str, Way], dict[str, float], Callable[[], None]]:
    """vLLM's engine through clue's backend and `vllm serve` through clue's openai backend, on `folder`; their load
    times (engine up; server healthy) and a function that stops both. The engine runs in vLLM's default mode (a
    child process): in-process, vLLM pins this process's torch to one thread, which would slow the other ways."""
    import sys

    sys.path.insert(0, str(REPO))
    from tiers.vllm.conftest import Models, Server

    spec = ModelSpec("vllm", path=str(folder), backend="vllm", dtype="float32")
    offline = load_backend(spec, cache_dir, {"vllm": spec})
    began = time.perf_counter()
    offline._engine()  # type: ignore[attr-defined]
    loads = {"vllm": time.perf_counter() - began}
    server = Server(Models(folder, folder, folder, folder), cache_dir / "throughput-server.log")
    server.start(lora=False, env={"VLLM_SERVER_DEV_MODE": "1"})  # for /reset_prefix_cache
    loads["served"] = server.starts[-1]
    served_spec = ModelSpec.of(
        "served",
        path=str(folder),
        backend="openai",
        base_url=f"{server.url}/v1",
        served_name="smollm2",
        max_concurrency=4,
    )
    served = load_backend(served_spec, cache_dir)

    def run(backend: Any, reset: Callable[[], None]) -> Way:
        def way(_: TransformersBackend, batch: Sequence[Prompt]) -> list[tuple[str, int]]:
            reset()  # an earlier round's prompts are not cached: the same footing as the transformers ways
            return [(g.text, g.completion_tokens) for g in backend.generate(batch, GenerationSettings())]

        return way

    def reset_server() -> None:
        import urllib.request

        urllib.request.urlopen(urllib.request.Request(f"{server.url}/reset_prefix_cache", method="POST"), timeout=30)

    def reset_engine() -> None:
        from clue.backends.vllm import POOL

        POOL.engine.reset_prefix_cache()

    def stop() -> None:
        offline.close()
        server.kill()

    return {"vllm": run(offline, reset_engine), "served": run(served, reset_server)}, loads, stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--meqsum", type=int, default=16, help="MeQSum prompts (default 16)")
    parser.add_argument("--medisumcode", type=int, default=6, help="MeDiSumCode prompts (default 6)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds per way (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1, clue's default here)")
    parser.add_argument("--continuous", action="store_true", help="also time transformers' continuous batching")
    parser.add_argument("--vllm", action="store_true", help="also time vLLM's engine and `vllm serve` (vLLM tier env)")
    parser.add_argument("--cache-dir", type=Path, default=REPO / ".clue-cache")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    path = hf_model(args.cache_dir) if args.vllm else gguf_path(args.cache_dir)
    spec = ModelSpec("smollm2", path=str(path), dtype="float32")
    backend = load_backend(spec, args.cache_dir)
    assert isinstance(backend, TransformersBackend)
    began = time.perf_counter()
    backend._ensure_model()
    loads = {"transformers": time.perf_counter() - began}
    sets = {"MeQSum": prompts("meqsum", MEQSUM, args.meqsum) if MEQSUM.is_file() else []}
    sets["MeDiSumCode"] = prompts("medisumcode", MEDISUMCODE, args.medisumcode)
    ways: dict[str, Way] = {"before": before, "after": after, "plain": plain}
    if args.continuous:
        ways["continuous"] = continuous
    stop: Callable[[], None] = lambda: None  # noqa: E731
    if args.vllm:
        extra, engine_loads, stop = engine_ways(args.cache_dir, path)
        ways.update(extra)
        loads.update(engine_loads)
    print("load: " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in loads.items()))
    try:
        measure(ways, sets, backend, args.rounds, args.threads)
    finally:
        stop()


def measure(
    ways: dict[str, Way], sets: dict[str, list[Prompt]], backend: TransformersBackend, rounds: int, threads: int
) -> None:
    for name, batch in sets.items():
        if not batch:
            print(f"{name}: no data (MeQSum is read from {MEQSUM})")
            continue
        walls: dict[str, list[float]] = {w: [] for w in ways}
        outputs: dict[str, list[tuple[str, int]]] = {}
        for _ in range(rounds):
            for way, run in ways.items():
                began = time.perf_counter()
                outputs[way] = run(backend, batch)
                walls[way].append(time.perf_counter() - began)
        tokens = {w: sum(n for _, n in outputs[w]) for w in ways}
        print(f"{name}: {len(batch)} prompts, {rounds} rounds, {threads} thread(s)")
        for way in ways:
            median = statistics.median(walls[way])
            same = sum(a == b for a, b in zip(outputs[way], outputs["plain"], strict=True))
            print(
                f"  {way:6s} wall {median:7.1f} s (min {min(walls[way]):.1f}, max {max(walls[way]):.1f}); "
                f"{tokens[way] / median:6.2f} useful tokens/s; identical to plain {same}/{len(batch)}"
            )
        b, a, p = (statistics.median(walls[w]) for w in ("before", "after", "plain"))
        print(
            f"  useful tokens/s, after / before: {b / a * tokens['after'] / tokens['before']:.2f}x; after / plain: "
            f"{p / a * tokens['after'] / tokens['plain']:.2f}x"
        )
        if "vllm" in ways:
            for way in ("vllm", "served"):
                w = statistics.median(walls[way])
                print(f"  useful tokens/s, {way} / after: {a / w * tokens[way] / tokens['after']:.2f}x")


if __name__ == "__main__":
    main()
