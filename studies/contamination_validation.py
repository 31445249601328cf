"""Does the contamination diagnostic flag a model trained on the test items, and only such a model? An experiment on
a real model (SmolLM2-135M-Instruct, float32 on the CPU) and MeQSum's real data, through clue's own code: the probes
(clue/run/contamination/probes.py), the transformers backend's `score_targets` and the statistic
(clue/statistics/contamination.py).

The probed items are the first --items scored MeQSum samples (the diagnostic's own choice). Conditions:
  contaminated-N-eE-sS  a LoRA adapter (clue.models.smollm2.train_lora) trained E epochs on N of the probed items
                        (question -> summary, in an instruction format of its own, not clue's prompt: as a
                        fine-tuning mix would hold them)
  adapted-N-eE-sS       the same training on N MeQSum items that are not probed (MeQSum-style text, not the test set:
                        legitimate domain adaptation)
  copy                  the base unchanged;  int8  the base's linear weights quantised to int8 per row and back;
  noised                the base with Gaussian noise of 1 % of each weight matrix's standard deviation
Per condition it prints whether the case is flagged, the statistic with its interval, and the item-level rates: the
share of trained items that look memorised (detection) and of untrained ones (false flags), each with its N.
Each condition runs with --seeds seeds (seed S draws the items and orders the training), which gives the case-level
detection rate (contaminated) and false-flag rate (adapted and copies) with their N.

    python studies/contamination_validation.py                  # the table in docs/contamination.md
    python studies/contamination_validation.py --cells 25x3 --seeds 1   # a quick look
    python studies/contamination_validation.py --neighbours fluent ...  # neighbours the base proposes

--neighbours fluent and fluent-quarter replace the diagnostic's neighbours (a quarter of the content words swapped
for the task's other words) with fluent ones the base model proposes (studies/lm_neighbours.py): one word
per neighbour, or a quarter of them; an experiment on whether fluency separates adaptation from contamination.
--prompt empty scores the answers after the prompt with the question's text taken out. --reference N also scores N
MeQSum items that no condition trains on and prints each condition's d on the probed items against its d on these.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from clue.run.contamination.probes import Probe, ProbeSettings, build_probes  # noqa: E402
from clue.statistics.contamination import Finding, ItemLogprobs, against_reference, diagnose, item_statistic  # noqa: E402
from clue.types import Sample, TargetRequest  # noqa: E402

MEQSUM = REPO.parent / "shared" / "data" / "MeQSum" / "MeQSum_ACL2019_BenAbacha_Demner-Fushman.xlsx"
INSTRUCTION = "Summarize this consumer health question as one short question.\n\n"


@dataclass(frozen=True)
class Defaults:
    """The diagnostic's defaults, read from clue's option table so the experiment measures what users run."""

    margin: float
    item_threshold: float
    alpha: float


def defaults() -> Defaults:
    from clue.config import GateOptions

    gate = GateOptions()
    return Defaults(gate.contamination_margin, gate.contamination_item_threshold, gate.alpha)


def meqsum() -> tuple[Any, list[Sample]]:
    from clue.tasks import get_task

    task = get_task("meqsum")
    samples = task.load(MEQSUM)
    _, scored = task.split(samples, 1)
    return task, scored


def as_pair(sample: Sample) -> tuple[str, str]:
    """A MeQSum item as a fine-tuning mix holds it: an instruction of its own (not clue's prompt) with the question,
    and the summary as the answer; the question cut at 1,500 characters (a few are long e-mails)."""
    return INSTRUCTION + str(sample.fields["CHQ"])[:1500], str(sample.reference)


def altered_copy(base: Path, how: str, out: Path) -> Path:
    """The base with its linear weights quantised to int8 per row and back (`int8`) or with Gaussian noise of 1 %
    of each matrix's standard deviation (`noised`), saved as a folder of its own."""
    import shutil

    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    with torch.no_grad():
        for name, weight in model.named_parameters():
            if weight.dim() != 2 or "embed" in name:
                continue
            if how == "int8":
                scale = weight.abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / 127
                weight.copy_((weight / scale).round().clamp(-127, 127) * scale)
            else:
                weight.add_(torch.randn_like(weight) * weight.std() * 0.01)
    model.save_pretrained(out)
    for f in base.iterdir():
        if f.name.startswith(("tokenizer", "special_tokens", "chat_template", "vocab", "merges")):
            shutil.copy(f, out / f.name)
    return out


def without_question(probe: Probe, question: str) -> Probe:
    """The probe with the question's text taken out of its user turn (the task's frame around it kept)."""
    from dataclasses import replace

    prompt = probe.request.prompt
    turns = tuple(
        replace(m, content=m.content.replace(question, "")) if m.role == "user" else m for m in prompt.messages
    )
    request = TargetRequest(replace(prompt, messages=turns), probe.request.targets)
    return replace(probe, request=request)


def scores(name: str, path: Path, adapter: Path | None, probes: Sequence[Probe]) -> list[ItemLogprobs]:
    """The items' per-token log-probabilities through the transformers backend (what a run computes)."""
    from clue.backends.transformers import TransformersBackend
    from clue.models.matrix import ModelSpec

    spec = ModelSpec(name, path=str(path), dtype="float32", adapter=str(adapter) if adapter else None)
    backend = TransformersBackend(spec, str(path))
    out = backend.score_targets([p.request for p in probes], desc=f"{name}: scoring")
    backend.close()
    items = []
    for scored in out:
        assert scored.error is None, scored.error
        items.append(ItemLogprobs(scored.scores[0].per_token, tuple(s.per_token for s in scored.scores[1:])))
    return items


def row(condition: str, finding: Finding, d: Sequence[float], trained: set[int], threshold: float) -> str:
    hit = sum(d[i] > threshold for i in trained)
    untrained = [i for i in range(len(d)) if i not in trained]
    false = sum(d[i] > threshold for i in untrained)
    detect = f"{hit}/{len(trained)} ({hit / len(trained):.0%})" if trained else "-"
    return (
        f"| {condition} | {'yes' if finding.flagged else 'no'} | {finding.statistic:+.3f} "
        f"[{finding.ci_low:+.3f}, {finding.ci_high:+.3f}] | {finding.exact_gain:+.3f} | {finding.neighbour_gain:+.3f} "
        f"| {detect} | {false}/{len(untrained)} ({false / max(1, len(untrained)):.0%}) |"
    )


HEADER = (
    "| condition | flagged | d, mean [95% CI] | exact gain | neighbour gain | trained items flagged "
    "| untrained items flagged |\n|---|---|---|---|---|---|---|"
)


def verdict_row(
    condition: str, items: Sequence[ItemLogprobs], base: Sequence[ItemLogprobs], trained: set[int], known: Defaults
) -> tuple[str, Finding]:
    finding = diagnose(
        items, base, margin=known.margin, item_threshold=known.item_threshold, alpha=known.alpha, resamples=2000,
        seed=1,
    )  # fmt: skip
    d = [item_statistic(c, b) for c, b in zip(items, base, strict=True)]
    return row(condition, finding, d, trained, known.item_threshold), finding


def rates(judged: Sequence[tuple[str, Finding]]) -> str:
    """Per condition (its seeds together): how many runs were flagged, of N: the detection rate of a contaminated
    condition, the false-flag rate of an adapted one or a copy; with each run's d."""
    groups: dict[str, list[Finding]] = {}
    for name, finding in judged:
        groups.setdefault(name.rsplit("-s", 1)[0] if "-e" in name else name, []).append(finding)
    lines = ["| condition | runs flagged / N | d per run (seed 0, 1, …) |", "|---|---|---|"]
    for name, found in groups.items():
        flagged = sum(f.flagged for f in found)
        each = ", ".join(f"{f.statistic:+.3f}" for f in found)
        lines.append(f"| {name} | {flagged}/{len(found)} | {each} |")
    return "\n".join(lines)


REFERENCE_HEADER = (
    "| condition | flagged (lower end > 0) | exact gain, probed | exact gain, reference | d probed − d reference "
    "[95% CI] |\n|---|---|---|---|---|"
)


def reference_row(
    condition: str,
    probed: tuple[Sequence[ItemLogprobs], Sequence[ItemLogprobs]],
    reference: tuple[Sequence[ItemLogprobs], Sequence[ItemLogprobs]],
) -> str:
    """The reference-set comparison of one condition (clue.statistics.contamination.against_reference, 95 %
    interval): its d on the probed items against its d on items that no condition trained on; flagged when the
    interval's lower end is above 0."""
    gain = [sum(c.exact - b.exact for c, b in zip(*pair, strict=True)) / len(pair[0]) for pair in (probed, reference)]
    found = against_reference(probed, reference, alpha=0.025, resamples=2000, seed=1)
    return (
        f"| {condition} | {'yes' if found.flagged else 'no'} | {gain[0]:+.3f} | {gain[1]:+.3f} "
        f"| {found.statistic:+.3f} [{found.ci_low:+.3f}, {found.ci_high:+.3f}] |"
    )


def unseen(rest: Sequence[Sample], cells: Sequence[tuple[int, int]], seeds: Sequence[int]) -> list[Sample]:
    """The non-probed items that no adapted run of `cells` x `seeds` draws for its training."""
    drawn = {
        s.id for size, _ in cells for seed in seeds for s in random.Random(seed).sample(rest, min(size, len(rest)))
    }
    return [s for s in rest if s.id not in drawn]


CELLS = ("10x3", "25x3", "50x3", "100x1", "100x3")


def cell(text: str) -> tuple[int, int]:
    """`25x3`: 25 trained items, 3 epochs."""
    size, _, epochs = text.partition("x")
    if not (size.isdigit() and epochs.isdigit() and int(size) > 0 and int(epochs) > 0):
        raise argparse.ArgumentTypeError(f"{text!r}: expected ITEMSxEPOCHS with positive whole numbers, e.g. 25x3")
    return int(size), int(epochs)


def count(text: str) -> int:
    """A whole number, 0 or more (of items, or a seed)."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number, 0 or more")
    return int(text)


def positive(text: str) -> int:
    """A whole number, 1 or more (probed items, seeds)."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number, 1 or more")
    return int(text)


def rejudge(files: Sequence[Path], known: Defaults) -> str:
    """The tables of saved runs, judged again (at `known`'s margin): the conditions of every file, each name once,
    against the base scores they share."""
    stored = [json.loads(f.read_text(encoding="utf-8")) for f in files]
    base = [ItemLogprobs(e, tuple(n)) for e, n in stored[0]["base"]]
    lines, judged = [HEADER], list[tuple[str, Finding]]()
    for f, run in zip(files, stored, strict=True):
        other = [ItemLogprobs(e, tuple(n)) for e, n in run["base"]]
        if len(other) != len(base) or any(abs(a.exact - b.exact) > 1e-3 for a, b in zip(other, base, strict=True)):
            raise SystemExit(f"{f}: its base scores differ from {files[0]}'s (another --items or probe set)")
        for condition in run["conditions"]:
            if condition["name"] in {name for name, _ in judged}:
                continue  # the same condition in an earlier file (the copies are in every run): counted once
            items = [ItemLogprobs(e, tuple(n)) for e, n in condition["items"]]
            line, finding = verdict_row(condition["name"], items, base, set(condition["trained"]), known)
            lines.append(line)
            judged.append((condition["name"], finding))
    return "\n".join(lines) + "\n\n" + rates(judged)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=positive, default=200, help="probed items (the diagnostic's default cap)")
    parser.add_argument(
        "--cells", type=cell, nargs="+", default=[cell(c) for c in CELLS], metavar="NxE",
        help=f"trained items x epochs, one condition pair each (default: {' '.join(CELLS)})",
    )  # fmt: skip
    parser.add_argument("--seeds", type=positive, default=2, help="training seeds (and item draws) per condition")
    parser.add_argument(
        "--first-seed", type=count, default=0, metavar="S",
        help="the first seed (default 0): --first-seed 1 --seeds 1 runs seed 1 alone, to add a seed to earlier runs",
    )  # fmt: skip
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count() or 1,
        help="CPU threads for training (default: all; the adapters repeat on the same thread count)",
    )  # fmt: skip
    parser.add_argument("--cache-dir", type=Path, default=REPO / ".clue-cache")
    parser.add_argument("--out", type=Path, help="also write every condition's per-item scores here (JSON)")
    parser.add_argument("--margin", type=float, help="judge with this margin instead of the default")
    parser.add_argument(
        "--neighbours", choices=("swap", "fluent", "fluent-quarter"), default="swap",
        help="swap: the diagnostic's own neighbours; fluent: one content word per neighbour replaced by the base "
        "model's most likely other word; fluent-quarter: a quarter of them, left to right",
    )  # fmt: skip
    parser.add_argument(
        "--prompt", choices=("item", "empty"), default="item",
        help="item: the answers scored after the item's prompt (the diagnostic's); empty: after the same prompt with "
        "the question's text taken out (is the answer's gain the model knowing the answer to the question?)",
    )  # fmt: skip
    parser.add_argument(
        "--reference", type=count, default=0, metavar="N",
        help="also score N MeQSum items that no condition trains on and print each condition's d on the probed "
        "items against its d on these (a reference set of the task's unseen items; 0: none)",
    )  # fmt: skip
    parser.add_argument("--copies", action=argparse.BooleanOptionalAction, default=True, help="score the copies")
    parser.add_argument(
        "--rejudge", type=Path, nargs="+",
        help="print the tables of saved --out files (runs of the same --items: their base scores must agree), "
        "scoring nothing",
    )  # fmt: skip
    args = parser.parse_args()
    known = defaults()
    if args.margin is not None:
        known = Defaults(args.margin, known.item_threshold, known.alpha)
    if args.rejudge:
        print(rejudge(args.rejudge, known))
        return

    from clue.models import smollm2

    began = time.perf_counter()
    base = smollm2.hf_model(args.cache_dir)
    task, scored = meqsum()
    settings = ProbeSettings.of(args.items)  # the run's neighbours, count and seed
    by_id = {s.id: s for s in scored}
    proposer = None
    if args.neighbours != "swap":
        from lm_neighbours import Proposer

        proposer = Proposer(base)

    def prepared(chosen: list[Probe]) -> list[Probe]:
        if proposer is not None:
            from lm_neighbours import with_fluent_neighbours

            # one word per neighbour (a share that rounds to one) or a quarter; the seeds docs/contamination.md used
            share, drawn = (0.01, "a") if args.neighbours == "fluent" else (settings.share, "b")
            chosen = with_fluent_neighbours(chosen, proposer, share=share, seed=drawn)
        if args.prompt == "empty":
            chosen = [without_question(p, str(by_id[p.sample_id].fields["CHQ"])) for p in chosen]
        return chosen

    seeds = range(args.first_seed, args.first_seed + args.seeds)
    probes = prepared(build_probes(task, scored, None, settings))
    probed_ids = [p.sample_id for p in probes]
    rest = [s for s in scored if s.id not in set(probed_ids)]
    refs = prepared(build_probes(task, unseen(rest, args.cells, seeds), None, ProbeSettings.of(args.reference)))
    print(
        f"MeQSum: {len(probes)} probed items, {len(rest)} others; {settings}; {args.neighbours}, {args.prompt}",
        flush=True,
    )
    base_scores = scores("base", base, None, probes)
    base_refs = scores("base (reference)", base, None, refs) if refs else []
    referenced: list[str] = []

    saved: dict[str, Any] = {"base": [[b.exact, list(b.neighbours)] for b in base_scores], "conditions": []}
    judged: list[tuple[str, Finding]] = []

    def judge(condition: str, path: Path, adapter: Path | None, trained: set[int]) -> None:
        items = base_scores if condition == "copy" else scores(condition, path, adapter, probes)
        line, finding = verdict_row(condition, items, base_scores, trained, known)
        print(line, flush=True)
        if refs:
            own = base_refs if condition == "copy" else scores(condition, path, adapter, refs)
            referenced.append(reference_row(condition, (items, base_scores), (own, base_refs)))
        judged.append((condition, finding))
        saved["conditions"].append(
            {"name": condition, "trained": sorted(trained), "items": [[c.exact, list(c.neighbours)] for c in items]}
        )
        if args.out:
            args.out.write_text(json.dumps(saved), encoding="utf-8")

    def train(pairs: list[tuple[str, str]], folder: Path, epochs: int, seed: int) -> Path:
        return smollm2.train_lora(base, pairs, folder, epochs=epochs, seed=seed, threads=args.threads)

    print("\n" + HEADER, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        if args.copies:
            judge("copy", base, None, set())
        for how in ("int8", "noised") if args.copies else ():
            folder = altered_copy(base, how, Path(tmp) / how)
            judge(how, folder, None, set())
        for size, epochs in args.cells:
            for seed in seeds:
                pick = random.Random(seed).sample(range(len(probes)), min(size, len(probes)))
                pairs = [as_pair(by_id[probed_ids[i]]) for i in pick]
                out = train(pairs, Path(tmp) / f"c{size}-{epochs}-{seed}", epochs, seed)
                name = f"contaminated-{size}-e{epochs}-s{seed}"
                judge(name, base, out, set(pick))
            for seed in seeds:
                others = random.Random(seed).sample(rest, min(size, len(rest)))
                out = train([as_pair(s) for s in others], Path(tmp) / f"a{size}-{epochs}-{seed}", epochs, seed)
                name = f"adapted-{size}-e{epochs}-s{seed}"
                judge(name, base, out, set())
    print("\n" + rates(judged))
    if referenced:
        print(f"\nAgainst {len(refs)} reference items no condition trained on:\n{REFERENCE_HEADER}")
        print("\n".join(referenced))
    print(f"\n{time.perf_counter() - began:.0f} s in all", flush=True)


if __name__ == "__main__":
    main()
