"""A third-party backend (one file, options of its own) is registered, checked and run like clue's own."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from clue.errors import ConfigError


@dataclass(frozen=True)
class ClinicOptions:
    endpoint: str = ""
    shards: int = 1

    def problem(self) -> str | None:
        return None if self.shards > 0 else "shards must be positive"


class ClinicServerBackend:
    """A third-party engine with keys of its own (only what the registry and the matrix reader look at)."""

    Options = ClinicOptions

    def generate(self, *args: object, **kwargs: object) -> list[object]:
        return []

    def fingerprint(self, store: object) -> dict[str, object]:
        return {}

    def token_counter(self) -> None:
        return None

    def describe(self) -> dict[str, object]:
        return {}

    def close(self) -> None:
        return None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("shards = 'two'\n", "model 'x': shards must be an integer"),
        ("shards = 0\n", "model 'x': shards must be positive"),
        ("replicas = 2\n", "model 'x': unknown key.s. replicas; backend 'clinic' takes endpoint, shards beyond"),
        ("tensor_parallel_size = 2\n", 'tensor_parallel_size is only used with backend = "vllm"'),
    ],
)
def test_a_third_party_backend_takes_options_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: str, message: str
) -> None:
    """Before: ModelSpec was one flat table of clue's engines' keys, so an installed backend's own key was an
    "unknown key" whatever the backend; now each backend's typed `Options` says what it takes."""
    from clue.backends.registry import BACKENDS
    from clue.models.matrix import backend_options, load_matrix

    monkeypatch.setattr(
        BACKENDS, "installed", lambda: {"clinic": "tests.backends.test_third_party_backend:ClinicServerBackend"}
    )
    matrix = tmp_path / "m.toml"
    matrix.write_text('[models.x]\npath = "org/x"\nbackend = "clinic"\nendpoint = "https://h"\nshards = 3\n')
    spec = load_matrix(matrix)["x"]
    assert spec.options == (("endpoint", "https://h"), ("shards", 3))
    assert backend_options(spec, ClinicOptions) == ClinicOptions("https://h", 3)
    matrix.write_text('[models.x]\npath = "org/x"\nbackend = "clinic"\n' + extra)
    with pytest.raises(ConfigError, match=message) as info:
        load_matrix(matrix)
    assert str(matrix) in str(info.value)
