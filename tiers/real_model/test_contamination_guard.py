"""The contamination diagnostic on the real model, small enough for CI: a LoRA fine-tune of SmolLM2 on the MeQSum
items the run probes is flagged through `pytest benchmarks -k meqsum`, as a user runs it.

studies/contamination_finetune.py is the experiment at size (40 items, a second adapter trained on other items of
the kind that must not be flagged, reference items; 26 minutes); its recorded output is in studies/results/. This
guards its first half on a real model in minutes: the adapter is trained once, seeded, and cached by the content of
what it was trained on (.clue-cache/models/), so a second run of the tier trains nothing. The other half (a
fine-tune on other items is not flagged once reference items are given) is guarded on a tiny model in
tests/run/test_contamination.py.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import MEQSUM, REPO
from tests.helpers.child_suite import run_suite

pytestmark = pytest.mark.real_model

PROBED = 12  # the diagnostic needs 10 items at least
EPOCHS = 8
LR = 1e-3  # twice the studies' rate: a small set memorised firmly in few steps
THREADS = 2  # the adapter repeats on the same thread count; the cache key holds it
INSTRUCTION = "Summarize this consumer health question as one short question.\n\n"


def memorising_adapter(base: Path, pairs: list[tuple[str, str]]) -> Path:
    """A LoRA adapter of `base` trained on `pairs`, built once per content (pairs, epochs, rate, threads)."""
    from clue.models import smollm2
    from clue.util.files import build_folder

    key = json.dumps([pairs, EPOCHS, LR, THREADS, str(base.name)], ensure_ascii=False)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    folder = smollm2.models_dir(REPO / ".clue-cache") / f"smollm2-memorised-{digest}"
    return build_folder(
        folder, lambda tmp: smollm2.train_lora(base, pairs, tmp, epochs=EPOCHS, seed=0, lr=LR, threads=THREADS)
    )


def test_a_fine_tune_on_the_probed_items_is_flagged_on_the_real_model(tmp_path: Path) -> None:
    if not MEQSUM.is_file():
        pytest.skip(f"MeQSum's data is not at {MEQSUM}")
    from clue.models import smollm2
    from clue.run.contamination.probes import probed_samples
    from clue.tasks import get_task

    task = get_task("meqsum")
    probed = probed_samples(task, MEQSUM, PROBED)  # the file's fixed probe order: whatever --clue-limit is

    def pair(sample: Any) -> tuple[str, str]:
        return INSTRUCTION + str(sample.fields["CHQ"])[:1500], str(sample.reference)

    base = smollm2.hf_model(REPO / ".clue-cache")
    adapter = memorising_adapter(base, [pair(s) for s in probed])
    matrix = (
        f'[models.smollm2]\npath = "{base}"\ndtype = "float32"\n\n'
        f'[models.memorised]\npath = "{base}"\nadapter = "{adapter}"\ndtype = "float32"\nbase = "smollm2"\n'
    )
    run = run_suite(tmp_path, matrix, "-k", "meqsum", "--clue-contamination-items", str(PROBED))
    assert run.returncode in (0, 1), run.output[-3000:]
    found = run.record("meqsum", "memorised")["contamination"]
    assert found["status"] == "flagged" and found["flagged"] is True, found
    assert found["memorised"]["of"] == PROBED and found["memorised"]["n"] >= PROBED // 2, found
    assert found["exact_gain"] > found["neighbour_gain"], found  # the exact answers gained more than their neighbours
    assert "note: contamination flagged" in run.output, run.output[-3000:]
