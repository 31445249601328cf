"""The contamination diagnostic on a real model, through pytest as a user runs it: two LoRA fine-tunes of
SmolLM2-135M-Instruct (float32, CPU), seeded, the same size and training: one on the MeQSum items the run probes
(question -> summary, in an instruction of its own, as a fine-tuning mix would hold them), one on as many MeQSum
items that are not in the run's test file (legitimate adaptation to the task's kind of text). Then the same run again
with as many other MeQSum items, also not in the test file, as --clue-contamination-reference items.

Expected (and checked; the script exits 1 otherwise): the first is flagged and the second is not, both with and
without reference items; both gain over the base on the exact answers; with reference items only their probes are
computed (the test items' neighbour statistic comes from the store unchanged).

Until 2026-12-06 this was a test of the real-model tier (26 min on 2 cores: 13 min training two adapters, two suite
runs); it is an experiment, so it runs here and its output is recorded in studies/results/. What it certifies stays
guarded in CI by tiers/real_model (a small adapter trained on the probed items, flagged) and by
tests/run/test_contamination.py (the flag, the reference comparison and every report on a tiny model trained on its
test items). studies/contamination_validation.py measures the sizes and epochs in between.

    python studies/contamination_finetune.py                 # ~26 min on 2 cores (MeQSum in ../shared/data)
    python studies/contamination_finetune.py --probed 20     # a quicker look
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers import MEQSUM  # noqa: E402
from tests.helpers.child_suite import run_suite, write_meqsum  # noqa: E402

INSTRUCTION = "Summarize this consumer health question as one short question.\n\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--probed", type=int, default=40, help="MeQSum items probed, and each adapter's items")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs of each adapter")
    args = parser.parse_args(argv)
    if args.probed < 10 or args.epochs < 1:
        parser.error("--probed must be at least 10 (the diagnostic's minimum) and --epochs at least 1")
    if not MEQSUM.is_file():
        parser.error(f"MeQSum's data is not at {MEQSUM}")
    with tempfile.TemporaryDirectory(prefix="clue-finetune-") as tmp:
        found, compared, failures = experiment(Path(tmp), args.probed, args.epochs)
    print(json.dumps({"neighbours": found, "reference": compared}, indent=1))
    for failure in failures:
        print(f"NOT AS EXPECTED: {failure}")
    print("as expected" if not failures else f"{len(failures)} expectation(s) failed")
    return 1 if failures else 0


def experiment(folder: Path, probed: int, epochs: int) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    from clue.models import smollm2
    from clue.run.contamination.probes import probed_samples
    from clue.tasks import get_task

    task = get_task("meqsum")
    everything = task.load(MEQSUM)
    _, shuffled = task.split(everything, 1)
    answers = Counter(task.answer_key(s) for s in everything)  # an answer the file holds twice stays a test item's
    unique = [s for s in shuffled[200:500] if answers[task.answer_key(s)] == 1]
    other, unseen = shuffled[500 : 500 + probed], unique[:probed]  # taken out of the test file: never probed
    held_out = {s.id for s in (*other, *unseen)}
    test_file = write_meqsum(folder / "test.xlsx", [s for s in everything if s.id not in held_out])
    probed_items = probed_samples(task, test_file, probed)  # the file's fixed probe order (not the run's limit)

    def pairs(samples: list[Any]) -> list[tuple[str, str]]:
        return [(INSTRUCTION + str(s.fields["CHQ"])[:1500], str(s.reference)) for s in samples]

    base = smollm2.hf_model(REPO / ".clue-cache")
    print(f"training two adapters: {probed} items x {epochs} epochs each", flush=True)
    trained = smollm2.train_lora(base, pairs(probed_items), folder / "trained", epochs=epochs, seed=0)
    adapted = smollm2.train_lora(base, pairs(other), folder / "adapted", epochs=epochs, seed=0)
    matrix = f'[models.smollm2]\npath = "{base}"\ndtype = "float32"\n\n' + "".join(
        f'[models.{name}]\npath = "{base}"\nadapter = "{adapter}"\ndtype = "float32"\nbase = "smollm2"\n\n'
        for name, adapter in (("trained-on-test", trained), ("adapted", adapted))
    )
    options = ["-k", "meqsum", "--clue-limit", str(probed), "--clue-contamination-items", str(probed)]
    options += ["--clue-data", f"meqsum={test_file}"]
    print("pytest benchmarks -k meqsum, three models", flush=True)
    run = run_suite(folder / "run", matrix, *options)
    failures = [] if run.returncode in (0, 1) else [f"the run ended with {run.returncode}: {run.output[-3000:]}"]
    if failures:
        return {}, {}, failures
    cases = ("trained-on-test", "adapted")
    found = {case: run.record("meqsum", case)["contamination"] for case in cases}
    checks = {
        "trained-on-test is flagged": found["trained-on-test"]["flagged"] is True,
        "adapted is not flagged": found["adapted"]["flagged"] is False,
        "every probed item probed": found["trained-on-test"]["memorised"]["of"] == probed,
        "both fine-tunes gained on the answers": all(f["exact_gain"] > 0 for f in found.values()),
        "trained-on-test's statistic is the larger": found["trained-on-test"]["statistic"]
        > found["adapted"]["statistic"],
    }

    # the same run again, with the unseen items as reference items (an .xlsx of the task's own format): only their
    # probes are computed (the store holds the rest), and the flag is the comparison's
    reference = write_meqsum(folder / "reference.xlsx", unseen)
    print("again with --clue-contamination-reference", flush=True)
    again = run_suite(folder / "run", matrix, *options, "--clue-contamination-reference", f"meqsum={reference}")
    compared = {case: again.record("meqsum", case)["contamination"] for case in cases}
    checks |= {
        "every reference item scored": all(c.get("reference_items") == probed for c in compared.values()),
        "trained-on-test flagged against the reference": compared["trained-on-test"]["flagged"] is True
        and compared["trained-on-test"]["reference_ci_low"] > 0,
        "adapted not flagged against the reference": compared["adapted"]["flagged"] is False
        and compared["adapted"]["reference_ci_low"] <= 0,
        "the neighbour statistic came from the store": all(
            compared[c]["statistic"] == found[c]["statistic"] for c in cases
        ),
        "the terminal names the reference items": f"minus d on {probed} unseen reference items" in again.output,
    }
    return found, compared, [name for name, ok in checks.items() if not ok]


if __name__ == "__main__":
    sys.exit(main())
