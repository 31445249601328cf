"""The user-facing suite: JUnit XML goes to reports/junit.xml unless --junitxml says otherwise."""

from pathlib import Path

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if not config.option.xmlpath:
        config.option.xmlpath = str(Path(config.rootpath) / "reports" / "junit.xml")
