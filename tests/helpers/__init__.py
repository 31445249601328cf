"""Helpers the project's tests share: where the repository and its fixtures are, recorded-output matrices, JUnit
properties, and a run stopped mid-test. Stand-ins, hostile inputs, the fake vLLM and the fake server are modules
beside this one."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURE_DATA = REPO / "fixtures" / "data"
# MeQSum is public (CC BY 4.0): the real file, where the workspace keeps it beside the repository
MEQSUM = REPO.parent / "shared" / "data" / "MeQSum" / "MeQSum_ACL2019_BenAbacha_Demner-Fushman.xlsx"
needs_meqsum = pytest.mark.skipif(not MEQSUM.is_file(), reason=f"real MeQSum data not found at {MEQSUM}")


def write_replay_matrix(directory: Path, outputs: dict[str, list[dict[str, str]]]) -> None:
    """Recorded outputs for models "base" and "candidate" (replay backend) and a matrix gating one on the other."""
    import json

    for model, rows in outputs.items():
        (directory / f"{model}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (directory / "models.toml").write_text(
        '[models.base]\npath = "base.jsonl"\nbackend = "replay"\n\n'
        '[models.candidate]\npath = "candidate.jsonl"\nbackend = "replay"\nbase = "base"\n'
    )


def junit_suite_properties(path: Path) -> dict[str, str]:
    """The test suite's <properties> of a JUnit file: where clue puts each case's metrics (clue/report/junit.py)."""
    import xml.etree.ElementTree as ET

    suite = next(ET.parse(path).getroot().iter("testsuite"))
    properties = suite.find("properties")
    return {} if properties is None else {p.get("name", ""): p.get("value", "") for p in properties}


def sleeper(name: str) -> str:
    """A test module whose one test writes `started` and sleeps: a run is stopped while it waits."""
    body = "    pathlib.Path('started').write_text(str(os.getpid()))\n    time.sleep(120)\n"
    return f"import os, pathlib, time\n\ndef {name}():\n{body}"


def sigterm_once_started(command: list[str], cwd: Path) -> str:
    """Run `command` in `cwd`, send it SIGTERM once a test wrote `started`, and return its output, asserting that
    the run ended as interrupted (a CI job's timeout or cancel)."""
    import signal
    import subprocess
    import time

    child = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not (cwd / "started").exists():
        assert child.poll() is None and time.monotonic() < deadline, child.communicate()[0]
        time.sleep(0.2)
    child.send_signal(signal.SIGTERM)
    output, _ = child.communicate(timeout=60)
    assert child.returncode == pytest.ExitCode.INTERRUPTED, output
    return output
