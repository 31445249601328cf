"""`clue data check` reports every data set when one of them is broken."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.helpers import FIXTURE_DATA


def test_data_check_reports_every_data_set_when_one_is_broken(tmp_path: Path) -> None:
    """Before: a broken LongHealth file stopped `clue data check` before the other data sets."""
    shutil.copytree(FIXTURE_DATA, tmp_path / "data")
    (tmp_path / "data/longhealth/benchmark_v5.json").write_bytes(b'{"p": "\xff"}')
    done = subprocess.run(
        [sys.executable, "-m", "clue", "data", "check", str(tmp_path / "data")], cwd=tmp_path, capture_output=True,
        text=True,
    )  # fmt: skip
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert re.search(r"INVALID +LongHealth .*benchmark_v5.json: not UTF-8", done.stdout), done.stdout
    for name in ("MedNLI", "Problem Summary", "MeDiSumQA", "MeDiSumCode"):
        assert re.search(rf"found +{name} ", done.stdout), done.stdout
