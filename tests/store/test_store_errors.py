"""The store through the CLI and the plugin: a corrupt store is one error naming the file and the remedy, export
errors are one line, a read-only store serves a run whose generations are all there."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from clue.errors import StoreError
from clue.store.sqlite import GenerationStore
from clue.types import Generation
from tests.helpers.replay_project import run


def _store_with_one(tmp_path: Path) -> Path:
    store = GenerationStore(tmp_path / "cache/generations.sqlite3")
    store.put("k1", "base", "mednli", Generation("s1", "NEUTRAL", 3, 1, "stop", 0.1))
    store.close()
    return tmp_path / "cache/generations.sqlite3"


def _clue(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "clue", *args], cwd=cwd, capture_output=True, text=True)


def test_a_corrupt_store_is_one_error_naming_the_file_and_the_remedy(tmp_path: Path, answered: pytest.Pytester) -> None:
    """Before: "generation failed: DatabaseError: database disk image is malformed", naming neither."""
    path = _store_with_one(tmp_path)
    path.write_bytes(b"SQLite format 3\x00" + b"\x13" * 5000)
    with pytest.raises(StoreError, match=rf"generation store {re.escape(str(path))} cannot be used .*move it aside"):
        GenerationStore(path).get_many(["k1"])
    done = _clue("store", "export", "--cache-dir", str(path.parent), "--out", "x.jsonl", cwd=tmp_path)
    assert done.returncode == 1 and done.stderr.startswith("clue: generation store") and "Traceback" not in done.stderr
    (answered.path / "cache").mkdir()
    shutil.copy(path, answered.path / "cache/generations.sqlite3")
    result = run(answered, "-k", "mednli")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*generation store */cache/generations.sqlite3 cannot be used*move it aside*"])


def test_export_errors_are_one_line(tmp_path: Path) -> None:
    """Before: --out <existing folder> raised a traceback and --model typo wrote an empty file with exit 0."""
    _store_with_one(tmp_path)
    (tmp_path / "folder").mkdir()
    for args, message in [
        (["--out", "folder"], "clue: --out folder is a folder: name the JSON Lines file to write"),
        (["--model", "bsae", "--out", "x.jsonl"], "holds no generations of model 'bsae'; it holds base"),
        (["--task", "mednil", "--out", "x.jsonl"], "holds no generations of task 'mednil'; it holds mednli"),
    ]:
        done = _clue("store", "export", "--cache-dir", "cache", *args, cwd=tmp_path)
        assert done.returncode == 1 and message in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.jsonl").exists()


def test_a_read_only_store_serves_a_run_whose_generations_are_all_there(answered: pytest.Pytester) -> None:
    """Before: a read-only cache folder failed a run whose generations were all stored. The folder is mounted
    read-only in a mount namespace of its own (CI runs as root, for whom file modes do not forbid writing)."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "--mount", "true"]).returncode != 0:
        pytest.skip("unshare --mount is not available here: a read-only mount cannot be made")
    run(answered, "-k", "mednli").assert_outcomes(passed=2)
    cache = answered.path / "cache"
    command = [sys.executable, "-m", "pytest", "-k", "mednli", "--clue-matrix", "models.toml", "--clue-data-dir",
               "data", "--clue-reports-dir", "out2", "--clue-cache-dir", "cache", "-p", "no:cacheprovider"]  # fmt: skip
    script = f"mount --bind {cache} {cache} && mount -o remount,bind,ro {cache} {cache} && exec {' '.join(command)}"
    done = subprocess.run(["unshare", "--mount", "sh", "-c", script], cwd=answered.path, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "2 passed" in done.stdout
    # other decoding settings: nothing is stored for them, and the run says so before any model loads
    sampled = script + " --clue-temperature 0.5"
    done = subprocess.run(
        ["unshare", "--mount", "sh", "-c", sampled], cwd=answered.path, capture_output=True, text=True
    )
    assert "generations.sqlite3 is read-only and 50 generation(s) of base are not in it" in done.stdout, done.stdout
    store = GenerationStore(cache / "generations.sqlite3")
    store.read_only = True  # as it is opened on a read-only mount: storing something new is one clear error
    with pytest.raises(StoreError, match=r"generations.sqlite3 is read-only and a new generation must be stored"):
        store.put("k", "m", "t", Generation("s", "x", 1, 1, "stop", 0.0))
