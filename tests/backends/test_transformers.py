"""The transformers backend on a tiny random Llama built offline: loading, chat templates, batching, truncation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clue.backends import load_backend
from clue.backends.chat import TRUNCATION_MARK
from clue.backends.transformers import TransformersBackend
from clue.errors import ConfigError
from clue.models.matrix import ModelSpec
from clue.models.tiny import build_tiny_llama, folder_digest
from clue.store.sqlite import GenerationStore
from clue.types import ChatMessage, GenerationSettings, Prompt


def prompt(sample_id: str, user: str, *, max_new: int = 8, doc: str | None = None) -> Prompt:
    messages = (ChatMessage("system", "You are a coder."), ChatMessage("user", user))
    return Prompt("t", sample_id, messages, max_new, doc)


@pytest.fixture(scope="module")
def backend(tiny_model_dir: Path) -> TransformersBackend:
    return TransformersBackend(ModelSpec("tiny", path=str(tiny_model_dir)), str(tiny_model_dir))


def test_tiny_models_are_deterministic_per_seed(tmp_path: Path, tiny_model_dir: Path) -> None:
    again = build_tiny_llama(tmp_path / "again", seed=0)
    other = build_tiny_llama(tmp_path / "other", seed=1)
    assert folder_digest(again) == folder_digest(tiny_model_dir)
    assert folder_digest(other) != folder_digest(tiny_model_dir)
    assert json.loads((again / "config.json").read_text())["num_hidden_layers"] == 2


def test_generates_one_record_per_prompt_in_order(backend: TransformersBackend) -> None:
    prompts = [prompt(f"s{i}", "word " * (i * 7 + 1), max_new=4 + i % 2) for i in range(5)]
    out = backend.generate(prompts, GenerationSettings(batch_size=2))
    assert [g.sample_id for g in out] == [p.sample_id for p in prompts]
    for p, g in zip(prompts, out, strict=True):
        assert g.error is None
        assert g.prompt_tokens > 0
        assert g.completion_tokens <= p.max_new_tokens
        assert g.finish_reason in ("stop", "length")
        assert (g.finish_reason == "length") == (g.completion_tokens == p.max_new_tokens)


def test_greedy_is_reproducible_and_independent_of_batching(backend: TransformersBackend) -> None:
    prompts = [prompt(f"s{i}", f"patient {i} has diabetes") for i in range(4)]
    one = backend.generate(prompts, GenerationSettings(batch_size=1))
    four = backend.generate(prompts, GenerationSettings(batch_size=4))
    assert [g.text for g in one] == [g.text for g in four]


def test_long_document_is_truncated_to_the_context(tiny_model_dir: Path) -> None:
    small = TransformersBackend(ModelSpec("tiny", path=str(tiny_model_dir), max_model_len=256), str(tiny_model_dir))
    doc = " ".join(f"line {i}: the patient was seen." for i in range(200))
    p = prompt("long", f"BEGIN\n{doc}\nEND. Now list the codes.", max_new=16, doc=doc)
    ids, removed, error = small.fit(p)
    assert error is None
    assert removed > 0 and len(ids) <= 256 - 16
    text = small.tokenizer.decode(ids)
    assert "You are a coder." in text and "Now list the codes." in text and TRUNCATION_MARK.strip() in text
    (g,) = small.generate([p], GenerationSettings())
    assert g.truncated_tokens == removed and g.prompt_tokens == len(ids) and g.error is None


def test_prompt_that_cannot_fit_becomes_a_failed_sample_not_a_crash(tiny_model_dir: Path) -> None:
    small = TransformersBackend(ModelSpec("tiny", path=str(tiny_model_dir), max_model_len=64), str(tiny_model_dir))
    fixed = "instructions " * 80
    out = small.generate([prompt("a", fixed, doc=None), prompt("b", "short")], GenerationSettings())
    assert out[0].error and "nothing may be shortened" in out[0].error and out[0].text == ""
    assert out[0].finish_reason == "error"
    assert out[1].error is None


def test_chat_template_override_and_system_folding(tmp_path: Path, tiny_model_dir: Path) -> None:
    # a Mistral-style template that rejects a system turn
    template = tmp_path / "nosystem.jinja"
    template.write_text(
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system role') }}{% endif %}"
        "[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}[assistant]"
    )
    spec = ModelSpec("tiny", path=str(tiny_model_dir), chat_template=str(template))
    # without system_role = false: an error naming the model and the setting, before anything is generated
    rejects = r"model 'tiny': its chat template rejects a system turn .*system_role = false"
    with pytest.raises(ConfigError, match=rejects):
        TransformersBackend.check(spec, str(tiny_model_dir))
    with pytest.raises(ConfigError, match="set system_role = false in its matrix entry"):
        _ = TransformersBackend(spec, str(tiny_model_dir)).chat  # the tokenizer loads lazily
    spec = ModelSpec("tiny", path=str(tiny_model_dir), chat_template=str(template), system_role=False)
    TransformersBackend.check(spec, str(tiny_model_dir))
    b = TransformersBackend(spec, str(tiny_model_dir))
    ids, _, error = b.fit(prompt("x", "Hello"))
    assert error is None and b.system_folded
    assert b.fingerprint(GenerationStore(tmp_path / "s.sqlite3"))["system_role"] is False
    assert b.tokenizer.decode(ids).startswith("[user] You are a coder.\n\nHello")
    assert b.describe()["system_prompt_folded_into_user_turn"] is True


def test_missing_model_folder_is_a_config_error(tmp_path: Path) -> None:
    spec = ModelSpec("ghost", path=str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match="ghost"):
        load_backend(spec, tmp_path)


def test_import_clue_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = "import sys, clue, clue.plugin, clue.tasks, clue.statistics.paired; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_weights_load_lazily_and_results_stream_to_the_callback(tiny_model_dir: Path) -> None:
    b = TransformersBackend(ModelSpec("tiny", path=str(tiny_model_dir)), str(tiny_model_dir))
    assert b.model is None and b.loads == 0  # tokenizer and config only
    seen: list[int] = []
    b.generate(
        [prompt("a", "x"), prompt("b", "y"), prompt("c", "z")],
        GenerationSettings(batch_size=2),
        on_result=lambda i, g: seen.append(i),
    )
    assert sorted(seen) == [0, 1, 2] and b.loads == 1


def test_stops_at_the_generation_configs_turn_end_token_and_counts_it(tmp_path: Path) -> None:
    """Llama-3/Gemma/Phi-3 shape: the template ends turns with a token that is not the tokenizer's eos, and
    generation_config.json lists both. The model ends its turn at once; a backend that only honours
    tokenizer.eos_token_id runs on to max_new_tokens."""
    from tests.helpers.standins import build_turn_end_llama

    folder = build_turn_end_llama(tmp_path / "turn-end")
    backend = TransformersBackend(ModelSpec("chat", path=str(folder)), str(folder))
    assert backend.chat.tokenizer.eos_token == "</s>" and len(backend.chat.stop_token_ids) == 2
    (out,) = backend.generate([prompt("s", "the patient has chest pain", max_new=20)], GenerationSettings())
    # the turn-end token is counted as generated (as vLLM and OpenAI-compatible servers count it), not shown
    assert (out.finish_reason, out.completion_tokens, out.text) == ("stop", 1, "")
    store = GenerationStore(tmp_path / "store.sqlite3")
    assert backend.fingerprint(store)["stop_token_ids"] == list(backend.chat.stop_token_ids)


def test_an_unreachable_hub_id_fails_at_once_with_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline, transformers spent ~2 minutes retrying before its error; clue asks the hub once (quick), looks in
    the local cache, and stops with how to point at a local folder."""
    import time

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty local hub cache
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    began = time.perf_counter()
    with pytest.raises(ConfigError, match=r"model 'ghost': 'org/not-cached'.*cannot be reached.*set path to that"):
        load_backend(ModelSpec("ghost", path="org/not-cached"), tmp_path)
    assert time.perf_counter() - began < 20
