"""The user-facing suite: JUnit XML goes to <reports dir>/junit.xml (--clue-reports-dir, default reports/) unless
--junitxml says otherwise, so one folder always holds the JUnit, the results and the report of the same run."""

from pathlib import Path

import pytest

from clue.errors import ClueError
from clue.plugin.options import resolve


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if config.option.xmlpath:
        return
    try:
        reports_dir = resolve(config).outputs.reports_dir
    except ClueError:  # clue's own configure reports the problem as a usage error
        reports_dir = Path(config.rootpath) / "reports"
    config.option.xmlpath = str(reports_dir / "junit.xml")
