"""Fixtures every test folder shares (the helpers they share are in tests/helpers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import write_replay_matrix
from tests.helpers.replay_project import answers, code_answers, make_project


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama built once for the test session (seed 0)."""
    from clue.models.tiny import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("models") / "tiny-seed0", seed=0)


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """The replay project (tests/helpers/replay_project.py); each test writes the models it needs."""
    return make_project(pytester)


@pytest.fixture
def answered(pytester: pytest.Pytester) -> pytest.Pytester:
    """The replay project with a base and a candidate that answer every record right."""
    p = make_project(pytester)
    write_replay_matrix(p.path, {m: answers(set()) + code_answers() for m in ("base", "candidate")})
    return p
