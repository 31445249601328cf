"""Model matrix parsing: what users write, and every way it can be wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clue.errors import ConfigError
from clue.models.matrix import load_matrix, pair_from_cli
from tests.helpers import REPO
from tests.helpers.hostile import CANARY, bytes_mutation
from tests.helpers.hostile_files import HOSTILE, refused_or_read


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


MATRIX = (REPO / "fixtures" / "models.toml").read_text()


@HOSTILE
@given(data=st.data())
def test_matrix_files(data: st.DataObject, tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    lines = MATRIX.splitlines()
    index = data.draw(st.integers(0, len(lines) - 1))
    kind = data.draw(st.sampled_from(["bytes", "repeat_line", "value"]))
    if kind == "repeat_line":
        lines.insert(index, lines[index])
    elif kind == "value" and "=" in lines[index]:
        key = lines[index].split("=", 1)[0]
        lines[index] = f"{key}= {data.draw(st.sampled_from(['1', 'true', '[1, 2]', '{a = 1}', repr(CANARY), '-1']))}"
    text = "\n".join(lines).encode()
    path.write_bytes(data.draw(bytes_mutation(text)) if kind == "bytes" else text)
    refused_or_read(load_matrix, path, quotes_values=True)  # "dtype 'bf16' is not one of ...": the typo shown
