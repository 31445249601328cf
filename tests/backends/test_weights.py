"""Model files beyond a plain folder: PEFT (LoRA) adapters and GGUF files on the transformers backend, every
configuration error once at start-up, dtype "auto" on a CPU, and SIGTERM.

Adapters and GGUF files here are built on the tiny random Llama (fast); the real model (SmolLM2 and its LoRA)
runs in tiers/real_model/test_real_model.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from clue.backends import load_backend
from clue.backends.transformers import resolve_dtype
from clue.backends.weights import AdapterWarning, check_adapter, locate
from clue.errors import ConfigError
from clue.models.matrix import ModelSpec
from clue.store.sqlite import GenerationStore
from clue.types import ChatMessage, GenerationSettings, Prompt
from tests.helpers.replay_project import answers, code_answers, make_project, run

pytest_plugins = ["pytester"]


def make_adapter(base: Path, out: Path, *, rank: int = 4, targets: tuple[str, ...] = ("q_proj", "v_proj")) -> Path:
    """A LoRA adapter of the tiny Llama with random (non-zero) weights, so that it changes the outputs."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    config = LoraConfig(r=rank, target_modules=list(targets), init_lora_weights=False, lora_alpha=64)
    peft_model = get_peft_model(model, config)
    peft_model.save_pretrained(str(out))
    return out


@pytest.fixture(scope="module")
def adapter(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_adapter(tiny_model_dir, tmp_path_factory.mktemp("adapters") / "lora")


def edit_config(folder: Path, **changes: object) -> None:
    config = json.loads((folder / "adapter_config.json").read_text())
    (folder / "adapter_config.json").write_text(json.dumps({**config, **changes}))


def copy_adapter(adapter: Path, to: Path) -> Path:
    import shutil

    shutil.copytree(adapter, to)
    return to


def prompt(text: str = "Hello there, how are you today?") -> Prompt:
    return Prompt("mednli", "s1", (ChatMessage("user", text),), 12, None)


# -- adapters on the transformers backend -------------------------------------------------------------------------
def test_an_adapter_runs_on_the_transformers_backend(tiny_model_dir: Path, adapter: Path, tmp_path: Path) -> None:
    """Before: "the transformers backend does not load LoRA adapters" at the setup of every case."""
    settings = GenerationSettings(temperature=0.0, top_p=1.0, seed=0, batch_size=1)
    base = load_backend(ModelSpec("base", path=str(tiny_model_dir)), tmp_path)
    tuned = load_backend(ModelSpec("tuned", path=str(tiny_model_dir), adapter=str(adapter)), tmp_path)
    base_text = base.generate([prompt()], settings)[0].text
    tuned_text = tuned.generate([prompt()], settings)[0].text
    assert tuned.loads == 1 and base_text != tuned_text
    store = GenerationStore(tmp_path / "store.sqlite3")
    fingerprint = tuned.fingerprint(store)
    assert fingerprint["adapter"]["adapter_model.safetensors"]  # keyed by the adapter's file hashes
    assert fingerprint["files"] == base.fingerprint(store)["files"]
    assert tuned.describe()["adapter"] == str(adapter)


def test_an_adapters_file_hash_is_part_of_the_key(tiny_model_dir: Path, adapter: Path, tmp_path: Path) -> None:
    other = make_adapter(tiny_model_dir, tmp_path / "other", rank=2)
    store = GenerationStore(tmp_path / "store.sqlite3")
    one = load_backend(ModelSpec("a", path=str(tiny_model_dir), adapter=str(adapter)), tmp_path).fingerprint(store)
    two = load_backend(ModelSpec("a", path=str(tiny_model_dir), adapter=str(other)), tmp_path).fingerprint(store)
    assert one["adapter"] != two["adapter"]


def adapter_problem(adapter: Path, base: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        check_adapter(str(adapter), str(base), "model 'ft'", needs_peft=True)
    return str(caught.value)


def test_adapter_errors_name_the_folder_and_the_problem(tiny_model_dir: Path, adapter: Path, tmp_path: Path) -> None:
    missing = tmp_path / "empty"
    missing.mkdir()
    assert f"adapter {missing}: no adapter_config.json" in adapter_problem(missing, tiny_model_dir)
    broken = copy_adapter(adapter, tmp_path / "broken")
    (broken / "adapter_config.json").write_text("{not json")
    assert f"adapter {broken / 'adapter_config.json'}: unreadable" in adapter_problem(broken, tiny_model_dir)
    wrong_rank = copy_adapter(adapter, tmp_path / "rank")
    edit_config(wrong_rank, r=8)
    message = adapter_problem(wrong_rank, tiny_model_dir)
    assert f"adapter {wrong_rank}: tensor" in message and "has rank 4, but adapter_config.json says r = 8" in message
    wrong_targets = copy_adapter(adapter, tmp_path / "targets")
    edit_config(wrong_targets, target_modules=["k_proj"])
    assert "weights adapt 'q_proj', which target_modules (k_proj) does not list" in adapter_problem(
        wrong_targets, tiny_model_dir
    )


def test_an_adapter_of_another_base_model_is_refused(tiny_model_dir: Path, adapter: Path, tmp_path: Path) -> None:
    from clue.models.tiny import build_tiny_llama

    other_base = build_tiny_llama(tmp_path / "tiny-seed1", seed=1)
    moved = copy_adapter(adapter, tmp_path / "moved")
    edit_config(moved, base_model_name_or_path=str(other_base))
    message = adapter_problem(moved, tiny_model_dir)
    assert f"was trained on '{other_base}'" in message and f"the entry's path is '{tiny_model_dir}'" in message
    # its own base, and a copy of it elsewhere, are accepted
    edit_config(moved, base_model_name_or_path=str(tiny_model_dir))
    check_adapter(str(moved), str(tiny_model_dir), "model 'ft'", needs_peft=True)
    edit_config(moved, base_model_name_or_path=str(build_tiny_llama(tmp_path / "copy", seed=0)))
    check_adapter(str(moved), str(tiny_model_dir), "model 'ft'", needs_peft=True)
    # a hub id against a local folder cannot be compared: a warning, not an error
    edit_config(moved, base_model_name_or_path="org/some-model")
    with pytest.warns(AdapterWarning, match="cannot compare"):
        check_adapter(str(moved), str(tiny_model_dir), "model 'ft'", needs_peft=True)


# -- GGUF files ---------------------------------------------------------------------------------------------------
def write_gguf(path: Path, architecture: str = "llama", quant: str | None = None) -> Path:
    import numpy as np
    from gguf import GGMLQuantizationType, GGUFWriter

    writer = GGUFWriter(str(path), architecture)
    if quant is None:
        writer.add_tensor("token_embd.weight", np.zeros(4, dtype=np.float32))
    else:
        writer.add_tensor("t", np.zeros((1, 40), dtype=np.uint8), raw_dtype=GGMLQuantizationType[quant])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_a_gguf_file_or_a_folder_of_one_is_located(tmp_path: Path) -> None:
    file = write_gguf(tmp_path / "m.gguf")
    assert locate(str(file), "m").kwargs == {"gguf_file": "m.gguf"}
    assert locate(str(tmp_path), "m").gguf_file == "m.gguf"
    write_gguf(tmp_path / "n.gguf")
    with pytest.raises(ConfigError, match=r"holds 2 GGUF files \(m.gguf, n.gguf\) and no config.json"):
        locate(str(tmp_path), "m")


# -- every configuration error once, at start-up ------------------------------------------------------------------
def startup_error(project: pytest.Pytester, matrix: str) -> str:
    """Run the plugin on a matrix; it must stop with one usage error before any test ran."""
    (project.path / "models.toml").write_text(matrix)
    result = run(project, "-k", "mednli")
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    assert "passed" not in result.stdout.str() and "failed" not in result.stdout.str()
    text = result.stderr.str()
    assert text.count("clue: ") == 1, text
    return text


def test_configuration_errors_are_one_usage_error_at_start_up(
    pytester: pytest.Pytester, tiny_model_dir: Path, adapter: Path, tmp_path: Path
) -> None:
    """Before, each of these became an error at the setup of every case (or, for a GGUF file, a tokenizer error
    about an invalid JSON config file)."""
    project = make_project(pytester)
    base = f'[models.base]\npath = "{tiny_model_dir}"\n\n'
    no_config = tmp_path / "no-config"
    no_config.mkdir()
    text = startup_error(project, base + f'[models.ft]\npath = "{tiny_model_dir}"\nadapter = "{no_config}"\n')
    assert f"model 'ft': adapter {no_config}: no adapter_config.json" in text
    text = startup_error(
        project,
        base + f'[models.ft]\npath = "{tiny_model_dir}"\nadapter = "{adapter}"\nbackend = "openai"\n'
        'base_url = "http://127.0.0.1:9/v1"\n',
    )
    assert "model 'ft': with backend 'openai' the server applies adapters" in text
    foreign = write_gguf(tmp_path / "foreign.gguf", architecture="foo")
    text = startup_error(project, base + f'[models.gguf]\npath = "{foreign}"\n')
    assert f"model 'gguf': {foreign}: GGUF architecture 'foo' is not supported by transformers" in text
    quantised = write_gguf(tmp_path / "q81.gguf", quant="Q8_1")
    text = startup_error(project, base + f'[models.gguf]\npath = "{quantised}"\n')
    assert f"{quantised}: GGUF tensor type(s) Q8_1 cannot be dequantised" in text
    not_gguf = tmp_path / "weights.bin"
    not_gguf.write_bytes(b"\0" * 16)
    text = startup_error(project, base + f'[models.x]\npath = "{not_gguf}"\n')
    assert f"model 'x': path {not_gguf} is a file but not a .gguf file" in text


# -- dtype "auto" on a CPU ----------------------------------------------------------------------------------------
def test_dtype_auto_on_a_cpu_without_native_bf16_is_float32(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: "auto" loaded a bfloat16 checkpoint in bfloat16 on a CPU without native bf16 (8x slower), silently."""
    import shutil

    from clue.backends import transformers as backend_module

    folder = shutil.copytree(tiny_model_dir, tmp_path / "bf16")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "dtype": "bfloat16", "torch_dtype": "bfloat16"}))
    monkeypatch.setattr(backend_module, "cpu_has_native_bf16", lambda: False)
    backend = load_backend(ModelSpec("m", path=str(folder)), tmp_path)
    assert isinstance(backend, backend_module.TransformersBackend)
    with pytest.warns(backend_module.DtypeNotice, match="runs this bfloat16 checkpoint in float32 on this CPU"):
        assert backend.dtype == "float32"  # found when needed: the backend is built without torch
    assert str(backend._ensure_model().dtype) == "torch.float32"
    assert backend.describe()["dtype"] == "float32"
    monkeypatch.setattr(backend_module, "cpu_has_native_bf16", lambda: True)
    for spec in (ModelSpec("m", path=str(folder)), ModelSpec("m", path=str(folder), dtype="bfloat16")):
        built = load_backend(spec, tmp_path)
        assert isinstance(built, backend_module.TransformersBackend) and built.dtype == "bfloat16"


def test_resolve_dtype_rules() -> None:
    assert resolve_dtype("float16", "bfloat16", "cpu")[0] == "float16"  # an explicit dtype is kept
    assert resolve_dtype("auto", "bfloat16", "cuda")[0] == "bfloat16"
    assert resolve_dtype("auto", None, "cpu")[0] == "float32"
    assert resolve_dtype("auto", "float16", "cpu")[0] == "float32"


# -- SIGTERM ------------------------------------------------------------------------------------------------------
def test_sigterm_writes_the_reports_of_what_finished(pytester: pytest.Pytester) -> None:
    """Before: SIGTERM (a CI timeout or cancel) killed the run and left no reports at all."""
    project = make_project(pytester)
    from tests.helpers import sigterm_once_started, sleeper, write_replay_matrix

    write_replay_matrix(project.path, {m: answers(set()) + code_answers() for m in ("base", "candidate")})
    project.makepyfile(test_zz_wait=sleeper("test_zz_waits"))
    command = [sys.executable, "-m", "pytest", "--clue-matrix", "models.toml", "--clue-data-dir", "data"]
    command += ["--clue-reports-dir", "out", "--clue-cache-dir", "cache", "--junitxml", "out/junit.xml"]
    command += ["-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning"]
    sigterm_once_started(command, project.path)
    merged = json.loads((project.path / "out/clue-results.json").read_text())
    assert {(r["task"], r["case"]) for r in merged["results"]} >= {("mednli", "candidate"), ("medisumcode", "base")}
    assert "stopped (Ctrl-C or SIGTERM)" in (project.path / "out/summary.md").read_text()
    assert (project.path / "out/index.html").is_file() and (project.path / "out/junit.xml").is_file()
