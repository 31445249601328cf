"""A reports folder that cannot be written (a file where a folder belongs, a folder where a file belongs, a full
disk): the run still gates and prints its summary, then one error naming each path that could not be written and
why, and every other report is written where it can be. Before: a bare traceback from clue's own code, no summary,
no summary.md, no index.html."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_privacy_paths import leaks
from tests.helpers.hostile_files import RAW_IDS
from tests.helpers.replay_project import run

pytest_plugins = ["pytester"]

REPORTS = ("clue-results.json", "index.html", "summary.md", "clue-session.json")


def block(root: Path, where: str) -> Path:
    """A file in place of the folder `where` (or a folder in place of the file `where`)."""
    path = root / "out" / where
    path.parent.mkdir(parents=True, exist_ok=True)
    if where.endswith((".json", ".html", ".md")):
        (path / "inside").mkdir(parents=True)  # a non-empty folder: no rename can replace it
    else:
        path.write_text("not a folder\n")
    return path


@pytest.mark.parametrize(
    "where", ["", "results", "results/mednli", "index.html", "clue-results.json", "summary.md", "clue-session.json"]
)
def test_a_report_that_cannot_be_written_is_one_error_after_the_summary(answered: pytest.Pytester, where: str) -> None:
    if where == "":
        (answered.path / "out").write_text("a file where the reports folder belongs\n")
        blocked = answered.path / "out"
    else:
        blocked = block(answered.path, where)
    junit = ("--junitxml", "junit.xml")  # pytest's own junit.xml in the blocked folder would be pytest's INTERNALERROR
    result = run(answered, "-k", "mednli", *junit)
    output = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in output and "INTERNALERROR" not in output, output[-3000:]
    assert result.ret == pytest.ExitCode.TESTS_FAILED, output[-3000:]
    result.stdout.fnmatch_lines(["*clue results*", "*mednli*candidate*", "*clue: reports not written*"])
    errors = [line for line in result.stdout.lines if "clue: reports not written" in line]
    assert len(errors) == 1 and str(blocked) in errors[0], errors
    summary_at = next(i for i, line in enumerate(result.stdout.lines) if "clue results" in line)
    assert result.stdout.lines.index(errors[0]) > summary_at  # after the summary
    if where:
        for name in REPORTS:  # every other report is written
            path = answered.path / "out" / name
            assert path == blocked or blocked in path.parents or path.is_file(), name
    if (answered.path / "out").is_dir():
        assert not leaks(answered.path / "out", RAW_IDS)
