"""rouge-score vs rouge-score-rs: are the numbers identical, and how much faster is the Rust one?

Scores the real MeQSum data (../shared/data, else the fixtures' Problem Summary) as CLUE would: every reference
summary against three kinds of candidate (the long consumer question, another summary, the summary itself), with
stemming on and off, and compares every F-measure bit for bit. Prints the timing ratio measured in this run.

    pip install rouge-score-rs   # not a dependency of clue
    python studies/rouge_compare.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from clue.tasks import get_task

REPO = Path(__file__).resolve().parents[1]
MEQSUM = REPO.parent / "shared/data/MeQSum/MeQSum_ACL2019_BenAbacha_Demner-Fushman.xlsx"


def pairs() -> tuple[str, list[str], list[str]]:
    if MEQSUM.is_file():
        samples = get_task("meqsum").load(MEQSUM)
        long = [str(s.fields["CHQ"]) for s in samples]
        source = f"MeQSum ({len(samples)} records)"
    else:
        samples = get_task("problem_summary").load(REPO / "fixtures/data/problem_summary/BioNLP2023-1A-Test.csv")
        long = [str(s.fields["Assessment"]) for s in samples]
        source = f"Problem Summary fixture ({len(samples)} records)"
    refs = [str(s.reference) for s in samples]
    shuffled = refs[:]
    random.Random(0).shuffle(shuffled)
    return source, refs * 3, long + shuffled + refs


def one_by_one(scorer: Any, refs: list[str], preds: list[str]) -> list[Any]:
    return [scorer.score(r, p) for r, p in zip(refs, preds, strict=True)]


def timed(fn: Callable[[], list[Any]], repeat: int) -> tuple[float, list[Any]]:
    best, out = float("inf"), list[Any]()
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="timing repetitions, best is kept (default 3)")
    args = parser.parse_args()
    from rouge_score import rouge_scorer as py
    from rouge_score_rs import rouge_scorer as rs

    source, refs, preds = pairs()
    types = ["rouge1", "rouge2", "rougeL"]
    print(f"data: {source}, {len(refs)} pairs")
    for stem in (True, False):
        a, b = py.RougeScorer(types, use_stemmer=stem), rs.RougeScorer(types, use_stemmer=stem)
        t_py, r_py = timed(partial(one_by_one, a, refs, preds), args.repeat)
        t_rs, r_rs = timed(partial(one_by_one, b, refs, preds), args.repeat)
        t_batch, r_batch = timed(partial(b.score_batch, refs, preds), args.repeat)
        diff = sum(
            x[k].fmeasure != y[k].fmeasure or x[k].fmeasure != z[k].fmeasure
            for x, y, z in zip(r_py, r_rs, r_batch, strict=True)
            for k in types
        )
        print(
            f"stemmer {'on ' if stem else 'off'}: rouge-score {t_py:.3f}s | rouge-score-rs {t_rs:.3f}s "
            f"({t_py / t_rs:.1f}x) | score_batch {t_batch:.3f}s ({t_py / t_batch:.1f}x) | "
            f"differing F-measures: {diff} of {len(refs) * len(types)}"
        )


if __name__ == "__main__":
    main()
