"""Start-up checks of everything a matrix entry names, before any model loads: an adapter folder is an adapter (for
weights clue builds too), a chat template renders the conversation (plain text is a valid Jinja template and was
accepted), and the entry's numbers mean something (`max_model_len = -5` was accepted and failed later)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clue.backends import check_entry
from clue.errors import ConfigError
from clue.models.matrix import load_matrix
from clue.util.options import SEED_MAX, TOKENS_MAX


def entries(folder: Path, text: str) -> None:
    """Read the matrix `text` and run every entry's start-up checks (raises ConfigError)."""
    (folder / "models.toml").write_text(text)
    for spec in load_matrix(folder / "models.toml").values():
        check_entry(spec)


@settings(max_examples=80, deadline=None)
@given(key=st.sampled_from(["max_model_len", "seed"]), value=st.integers(-(2**40), 2**40))
def test_an_entry_s_numbers_are_in_their_range_or_refused_naming_the_key(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, key: str, value: int
) -> None:
    folder = tmp_path_factory.mktemp("matrix")
    low, high = {"max_model_len": (1, TOKENS_MAX), "seed": (0, SEED_MAX)}[key]
    text = f'[models.a]\npath = "{tiny_model_dir}"\n{key} = {value}\n'
    if low <= value <= high:
        entries(folder, text)
    else:
        with pytest.raises(ConfigError, match=rf"model 'a': {key} must be between {low} and {high}, not {value}"):
            entries(folder, text)


def test_a_folder_that_is_no_adapter_is_refused_at_start_up_for_built_weights_too(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "README.txt").write_text("not an adapter\n")
    for where in ('build = "tiny-llama"', f'path = "{tmp_path}"'):
        with pytest.raises(ConfigError, match=r"model 'a': adapter .*notes: no adapter_config.json in the folder"):
            entries(tmp_path, f'[models.a]\n{where}\nadapter = "{tmp_path / "notes"}"\n')


@pytest.mark.parametrize("backend", ["transformers", "vllm"])
def test_a_chat_template_that_does_not_render_the_conversation_is_refused(
    tmp_path: Path, tiny_model_dir: Path, backend: str
) -> None:
    (tmp_path / "plain.jinja").write_text("Answer the question.\n")
    with pytest.raises(ConfigError, match=r"model 'a': the chat template .*plain.jinja. does not render the conv"):
        entries(
            tmp_path, f'[models.a]\npath = "{tiny_model_dir}"\nbackend = "{backend}"\nchat_template = "plain.jinja"\n'
        )
    good = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}<assistant>"
    (tmp_path / "chat.jinja").write_text(good)
    entries(tmp_path, f'[models.a]\npath = "{tiny_model_dir}"\nbackend = "{backend}"\nchat_template = "chat.jinja"\n')
