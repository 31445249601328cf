"""`pytest benchmarks` as a user runs it, in a child process with a matrix, store and reports of its own: how the
real-model and vLLM tiers (tiers/) and the studies (studies/) run the suite on real models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.helpers import REPO

LIMIT = 2


LONGHEALTH_TOKENS = 1024  # LongHealth's prompt budget, reduced from 8,140 to fit CI's time on two cores


@dataclass(frozen=True)
class Run:
    folder: Path
    output: str
    returncode: int

    def record(self, task: str, case: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.folder / "reports/results" / task / f"{case}.json").read_text())
        return data

    @property
    def records(self) -> list[dict[str, Any]]:
        merged = json.loads((self.folder / "reports/clue-results.json").read_text())
        records: list[dict[str, Any]] = merged["results"]
        return records

    @property
    def session(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.folder / "reports/clue-session.json").read_text())
        return data

    def outputs(self, model: str) -> dict[tuple[str, str], dict[str, Any]]:
        """The raw generations in the run's store (`clue store export`), by (task, sample id)."""
        out = self.folder / f"{model}.jsonl"
        command = [sys.executable, "-m", "clue", "store", "export", "--cache-dir", str(self.folder / "cache")]
        subprocess.run([*command, "--model", model, "--out", str(out)], check=True, capture_output=True)
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        return {(r["task"], r["sample_id"]): r for r in rows}


def suite_command(folder: Path, matrix: str, *options: str) -> list[str]:
    """`pytest benchmarks` as a user runs it, with this run's matrix (written here), store and reports."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "models.toml").write_text(matrix)
    command = [sys.executable, "-m", "pytest", "benchmarks", "-p", "no:cacheprovider", "-q"]
    command += ["--clue-matrix", str(folder / "models.toml"), "--clue-limit", str(LIMIT)]
    command += ["--clue-longhealth-max-tokens", str(LONGHEALTH_TOKENS), "--clue-cpu-threads", "2"]
    command += ["--clue-cache-dir", str(folder / "cache"), "--clue-reports-dir", str(folder / "reports")]
    return [*command, "--junitxml", str(folder / "reports/junit.xml"), *options]


def run_suite(folder: Path, matrix: str, *options: str, env: dict[str, str] | None = None) -> Run:
    """`suite_command` run in a child process (with `env` added to the environment)."""
    command = suite_command(folder, matrix, *options)
    environment = {**os.environ, **(env or {})}
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=3000, check=False, env=environment)
    return Run(folder, done.stdout + done.stderr, done.returncode)


def write_meqsum(path: Path, samples: list[Any]) -> Path:
    """`samples` as a MeQSum workbook (File, CHQ, Summary), under their own ids."""
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["File", "CHQ", "Summary"])
    for s in samples:
        sheet.append([s.id, str(s.fields["CHQ"]), str(s.reference)])
    book.save(path)
    return path
