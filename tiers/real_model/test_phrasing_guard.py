"""--clue-phrasings on the real model, small enough for CI (issue 44): SmolLM2 and its LoRA adapter generate
MeQSum under three wordings through the transformers backend, each wording its own generations (prompts differ
only in the system turn), gated per wording and combined; a baseline saved in that run gates the adapter again
with the base's per-wording scores and no base model loaded.

Whether the gate catches a prompt-overfit fine-tune on this model is an experiment (a LoRA trained on the task's
prompts takes 6 to 9 minutes to train here): studies/phrasing_overfit.py, recorded in studies/results/; the gate's
logic on such a candidate is guarded on recorded outputs in tests/e2e/test_phrasings.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import MEQSUM, REPO
from tests.helpers.child_suite import run_suite

pytestmark = pytest.mark.real_model

ITEMS = 4
WORDINGS = 3


def test_the_real_model_generates_and_is_gated_under_each_wording(tmp_path: Path) -> None:
    if not MEQSUM.is_file():
        pytest.skip(f"MeQSum's data is not at {MEQSUM}")
    from clue.models import smollm2
    from clue.tasks import get_task
    from clue.tasks.wordings import task_wordings

    cache = REPO / ".clue-cache"
    base, lora = smollm2.hf_model(cache), smollm2.hf_adapter(cache)
    matrix = (
        f'[models.smollm2]\npath = "{base}"\ndtype = "float32"\n\n'
        f'[models.lora]\npath = "{base}"\nadapter = "{lora}"\ndtype = "float32"\nbase = "smollm2"\n'
    )
    options = ["-k", "meqsum", "--clue-limit", str(ITEMS), "--clue-phrasings", str(WORDINGS)]
    off = ("--clue-contamination", "off")
    live = run_suite(tmp_path / "live", matrix, *options, *off, "--clue-save-baseline", str(tmp_path / "b.json"))
    assert live.returncode in (0, 1), live.output[-3000:]
    assert live.session["generated"] == {"smollm2": ITEMS * WORDINGS, "lora": ITEMS * WORDINGS}
    record = live.record("meqsum", "lora")
    digests = {w.id: w.digest for w in task_wordings(get_task("meqsum"))}
    assert [(e["wording"], e["digest"]) for e in record["phrasings"]] == [
        *((w, digests[w]) for w in ("reference", "clue-1", "clue-2")),
        ("combined", None),
    ]
    assert {e["n"] for e in record["phrasings"]} == {ITEMS}
    assert record["verdict"] == record["phrasings_summary"]["verdict"]
    assert f"across {WORDINGS} wordings:" in live.output, live.output[-3000:]

    candidate = f'[models.lora]\npath = "{base}"\nadapter = "{lora}"\ndtype = "float32"\n'
    # the live run's store: the adapter's generations are reused, so this run loads no model at all
    against = ("--clue-baseline", f"{tmp_path / 'b.json'}#smollm2", "--clue-cache-dir", str(tmp_path / "live/cache"))
    stored = run_suite(tmp_path / "stored", candidate, *options, *off, *against)
    assert stored.returncode in (0, 1), stored.output[-3000:]
    again = stored.record("meqsum", "lora-vs-smollm2")
    assert [e["base"] for e in again["phrasings"]] == [e["base"] for e in record["phrasings"]]
    assert stored.session["loads"].get("smollm2", 0) == 0 and sum(stored.session["generated"].values()) == 0
