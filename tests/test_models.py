"""Model matrix parsing: what users write, and every way it can be wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from clue.errors import ConfigError
from clue.models.matrix import load_matrix, pair_from_cli


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "models.toml"
    path.write_text(text)
    return path


def test_matrix_with_hub_ids_local_paths_and_bases(tmp_path: Path) -> None:
    (tmp_path / "ft").mkdir()
    (tmp_path / "llama3.jinja").write_text("{{ messages }}")
    models = load_matrix(
        write(
            tmp_path,
            """
[models.llama3]
path = "meta-llama/Meta-Llama-3-8B-Instruct"
revision = "abc123"

[models.clinical]
path = "ft"
base = "llama3"
dtype = "bfloat16"
chat_template = "llama3.jinja"
max_model_len = 8192
""",
        )
    )
    assert list(models) == ["llama3", "clinical"]
    assert models["llama3"].path == "meta-llama/Meta-Llama-3-8B-Instruct" and not models["llama3"].is_local
    assert models["clinical"].path == str((tmp_path / "ft").resolve()) and models["clinical"].is_local
    assert models["clinical"].base == "llama3" and models["clinical"].max_model_len == 8192
    assert models["clinical"].chat_template == str((tmp_path / "llama3.jinja").resolve())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[models.a]\npath='x'\nbase='b'\n", "base 'b' is not an entry"),
        ("[models.a]\npath='x'\nbase='a'\n", "names itself as its base"),
        ("[models.a]\npath='x'\nbase='b'\n[models.b]\npath='y'\nbase='a'\n", "cycle: a -> b -> a"),
        ("[models.a]\npath='x'\ntemprature=0\n", "unknown key"),
        ("[models.a]\nrevision='x'\n", "needs a path"),
        ("[models.a]\npath='x'\ndtype='fp8'\n", "dtype 'fp8'"),
        ("[models.a]\npath='x'\nbackend='tgi'\n", "backend 'tgi'"),
        ("[models.a]\npath='x'\nmax_model_len='4k'\n", "max_model_len must be an integer"),
        ("[models.a]\npath='x'\nchat_template='missing.jinja'\n", "chat_template file"),
        ("[models.a]\nbuild='tiny-llama'\npath='x'\n", "either path or build"),
        ("[other]\n", "at least one"),
        ("[models.a\n", "invalid TOML"),
    ],
)
def test_matrix_errors_name_file_and_entry(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as info:
        load_matrix(path)
    assert str(path) in str(info.value)


def test_missing_matrix_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_matrix(tmp_path / "nope.toml")


def test_cli_pair_names_candidate_and_base() -> None:
    models = pair_from_cli("org/ft", "org/base", dtype="float16")
    assert models["candidate"].base == "base" and models["candidate"].dtype == "float16"
    assert models["base"].path == "org/base" and models["base"].base is None
    assert pair_from_cli("org/ft", None)["candidate"].base is None
