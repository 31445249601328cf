"""Shared helpers for the project's own tests."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURE_DATA = REPO / "fixtures" / "data"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama built once for the test session (seed 0)."""
    from clue.tiny import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("models") / "tiny-seed0", seed=0)


def write_replay_matrix(directory: Path, outputs: dict[str, list[dict[str, str]]]) -> None:
    """Recorded outputs for models "base" and "candidate" (replay backend) and a matrix gating one on the other."""
    import json

    for model, rows in outputs.items():
        (directory / f"{model}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (directory / "models.toml").write_text(
        '[models.base]\npath = "base.jsonl"\nbackend = "replay"\n\n'
        '[models.candidate]\npath = "candidate.jsonl"\nbackend = "replay"\nbase = "base"\n'
    )
