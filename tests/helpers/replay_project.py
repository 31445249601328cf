"""A pytester project of recorded outputs (replay backend): MedNLI and MeDiSumCode data, their benchmark files, a
base and a candidate right or wrong on chosen records, and `run`, the plugin with the project's clue options. The
end-to-end tests of every folder build on it."""

from __future__ import annotations

import json

import pytest

from tests.helpers import REPO, write_replay_matrix

pytest_plugins = ["pytester"]


LABELS = ["ENTAILMENT", "NEUTRAL", "CONTRADICTION"]


N_RECORDS = 53  # 3 few-shot + 50 scored


def mednli_records() -> list[dict[str, str]]:
    return [
        {
            "pairID": f"p{i:03d}",
            "sentence1": f"Patient {i} has finding {i}.",
            "sentence2": f"Claim {i}.",
            "gold_label": LABELS[i % 3].lower(),
        }
        for i in range(N_RECORDS)
    ]


def answers(wrong: set[int]) -> list[dict[str, str]]:
    """Replay outputs for MedNLI: right on every record except those in `wrong`."""
    out = []
    for i, r in enumerate(mednli_records()):
        label = r["gold_label"].upper()
        text = LABELS[(LABELS.index(label) + 1) % 3] if i in wrong else f"The relation is {label}."
        out.append({"task": "mednli", "sample_id": r["pairID"], "text": text})
    return out


def code_answers() -> list[dict[str, str]]:
    records = json.loads((REPO / "fixtures/data/medisumcode/MeDiSumCode.json").read_text())
    return [
        {
            "task": "medisumcode",
            "sample_id": r["hadm_id"],
            "text": "ICD-10 Codes: " + ", ".join(c["code"] for c in r["icd_codes"]),
        }
        for r in records
    ]


def make_project(pytester: pytest.Pytester) -> pytest.Pytester:
    """MedNLI and MeDiSumCode data and their benchmark files; replayed outputs equal for both models on
    MeDiSumCode by construction, so the identical-output check is off unless a test turns it on."""
    data = pytester.path / "data"
    (data / "mednli").mkdir(parents=True)
    (data / "mednli" / "mli_test_v1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in mednli_records()))
    (data / "medisumcode").mkdir()
    (data / "medisumcode" / "MeDiSumCode.json").write_text(
        (REPO / "fixtures/data/medisumcode/MeDiSumCode.json").read_text()
    )
    for name in ("test_mednli.py", "test_medisumcode.py"):
        pytester.makepyfile(**{name[:-3]: (REPO / "benchmarks" / name).read_text()})
    pytester.makeini("[pytest]\n")
    return pytester


def write_models(p: pytest.Pytester, base_wrong: set[int], candidate_wrong: set[int]) -> None:
    write_replay_matrix(
        p.path, {"base": answers(base_wrong) + code_answers(), "candidate": answers(candidate_wrong) + code_answers()}
    )


def run(p: pytest.Pytester, *args: str, subprocess: bool = False) -> pytest.RunResult:
    """pytest with this project's clue options; `subprocess` runs it in a real child process.

    pytest's PytestAssertRewriteWarning for the already-imported clue plugin is ignored: it appears when the outer
    pytest was started as the `pytest` console script and not under `python -m pytest`, and the warning counts
    asserted here are clue's own."""
    return (p.runpytest_subprocess if subprocess else p.runpytest)(
        "-W",
        "ignore::pytest.PytestAssertRewriteWarning",
        "--clue-matrix",
        "models.toml",
        "--clue-data-dir",
        "data",
        "--clue-reports-dir",
        "out",
        "--clue-cache-dir",
        "cache",
        "--junitxml",
        "out/junit.xml",
        "-p",
        "no:cacheprovider",
        *args,
    )


def scored_indices() -> list[int]:
    """Indices (in file order) of the scored MedNLI records after CLUE's seed-1 shuffle."""
    import random

    order = list(range(N_RECORDS))
    random.Random(1).shuffle(order)
    return order[3:]
