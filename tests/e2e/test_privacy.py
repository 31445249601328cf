"""PHI-safe by default: after a real run of the plugin on every credentialed task (MedNLI, Problem Summary,
MeDiSumQA, MeDiSumCode), no artefact holds a raw sample id or a piece of the data's text: reports, JUnit, and the
stored baseline meant to be committed.

The candidate's recorded outputs echo the reference text (real models do), one sample fails (error messages name
samples), and a rescore misses a generation (its message goes into JUnit). Every file the run writes outside the
generation store is scanned for every id and every text snippet of the fixtures."""

from __future__ import annotations

import json

import pytest

from clue.types import Sample
from tests.helpers import FIXTURE_DATA, REPO, write_replay_matrix
from tests.helpers.hostile import names
from tests.helpers.privacy import CREDENTIALED, _samples, _secrets

pytest_plugins = ["pytester"]


def _outputs(samples: dict[str, list[Sample]], echo: bool) -> list[dict[str, str]]:
    rows = []
    for name, items in samples.items():
        for sample in items:
            reference = sample.reference
            text = ", ".join(reference) if isinstance(reference, tuple) else str(reference)
            if echo:  # a model that repeats the patient's text back
                text = f"{text} {next(v for v in sample.fields.values() if isinstance(v, str))}"
            rows.append({"task": name, "sample_id": sample.id, "text": text})
    return rows


def test_no_artefact_of_a_default_run_holds_a_raw_id_or_credentialed_text(pytester: pytest.Pytester) -> None:
    samples = _samples()
    ids, snippets = _secrets(samples)
    candidate = _outputs(samples, echo=True)[1:]  # the first sample has no recorded output: an error message
    write_replay_matrix(pytester.path, {"base": _outputs(samples, echo=False), "candidate": candidate})
    for name in CREDENTIALED:
        pytester.makepyfile(**{f"test_{name}": (REPO / "benchmarks" / f"test_{name}.py").read_text()})
    pytester.makeini("[pytest]\n")
    (pytester.path / "data").symlink_to(FIXTURE_DATA)
    options = [
        "-W", "ignore::pytest.PytestAssertRewriteWarning",
        "--clue-matrix", "models.toml", "--clue-data-dir", "data", "--clue-reports-dir", "out",
        "--clue-cache-dir", "cache", "--junitxml", "out/junit.xml", "-p", "no:cacheprovider",
        "--clue-bertscore-model", "tiny-bert", "--clue-umls-spacy-model", "ruler",
        "--clue-umls-linker", str(REPO / "fixtures/umls/kb.jsonl"),
    ]  # fmt: skip
    tracking = ["--clue-mlflow", "sqlite:///mlflow.db"] if _has_mlflow() else []  # and its artefacts in ./mlruns
    first = pytester.runpytest_subprocess(*options, "--clue-save-baseline", "out/baseline.json", *tracking)
    assert first.ret in (0, 1), first.stdout.str()
    assert not tracking or "cases logged to experiment 'clue'" in first.stdout.str()
    # a rescore that misses generations: its error message (naming the first missing sample) lands in JUnit
    (pytester.path / "candidate.jsonl").write_text(json.dumps(candidate[0]) + "\n")
    pytester.runpytest_subprocess(
        *options, "--clue-rescore", "--clue-temperature", "0.5", "--junitxml", "out/junit-rescore.xml"
    )
    inputs = {"data", "cache", "models.toml", "base.jsonl", "candidate.jsonl", "tox.ini"}  # the run's own inputs
    artefacts = [
        p
        for p in pytester.path.rglob("*")
        if p.is_file() and p.relative_to(pytester.path).parts[0] not in inputs and p.suffix != ".py"
    ]
    assert {"index.html", "summary.md", "junit.xml", "junit-rescore.xml", "clue-results.json", "baseline.json"} <= {
        p.name for p in artefacts
    }
    if tracking:  # the MLflow store: its database and the artefacts it holds are scanned like the reports
        assert (pytester.path / "mlflow.db").is_file()
        assert sum(p.name == "index.html" for p in artefacts) == 2 and sum(p.name == "mlflow.db" for p in artefacts)
    leaks = []
    for path in artefacts:
        text = path.read_bytes().decode("utf-8", errors="replace")
        leaks += [f"{path.name}: id {i!r}" for i in ids if names(text, i)]
        leaks += [f"{path.name}: text {s!r}" for s in snippets if s in text]
    assert not leaks, "\n".join(sorted(leaks)[:20])


def _has_mlflow() -> bool:
    import importlib.util

    return importlib.util.find_spec("mlflow") is not None  # .ci/run installs it: CI always scans the store


def test_the_store_and_an_export_of_it_are_private_files(pytester: pytest.Pytester) -> None:
    """Generations can echo patient text: the store (and its WAL files) and an export are readable by the owner
    only; the per-run JSONL dump is gone (clue store export writes one on request)."""
    import stat
    import subprocess
    import sys

    samples = {"mednli": _samples()["mednli"]}
    write_replay_matrix(pytester.path, {"base": _outputs(samples, False), "candidate": _outputs(samples, True)})
    pytester.makepyfile(test_mednli=(REPO / "benchmarks" / "test_mednli.py").read_text())
    pytester.makeini("[pytest]\n")
    (pytester.path / "data").symlink_to(FIXTURE_DATA)
    pytester.runpytest_subprocess(
        "--clue-matrix", "models.toml", "--clue-data-dir", "data", "--clue-reports-dir", "out",
        "--clue-cache-dir", "cache", "-p", "no:cacheprovider",
    )  # fmt: skip
    cache = pytester.path / "cache"
    stores = [p for p in cache.glob("generations.sqlite3*") if p.is_file()]
    assert stores and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in stores), [
        (p.name, oct(p.stat().st_mode)) for p in stores
    ]
    assert not (cache / "generations").exists()
    out = pytester.path / "export.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "clue", "store", "export", "--cache-dir", str(cache), "--model", "candidate",
         "--task", "mednli", "--out", str(out)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == len(samples["mednli"]) - 3 and {r["model"] for r in rows} == {"candidate"}
    assert all({"task", "sample_id", "text"} <= set(r) for r in rows)
