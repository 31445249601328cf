"""Security: remote code runs only when a model entry opts in; tokens from the environment never reach reports,
logs or the store; a data file found through the data folder never resolves outside it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from clue.backends.transformers import TransformersBackend
from clue.errors import ConfigError
from clue.models.matrix import ModelSpec, load_matrix
from tests.helpers import REPO
from tests.helpers.replay_project import mednli_records, run, write_models

pytest_plugins = ["pytester"]

HF_SECRET = "hf_testsecret0123456789ABCDEFGH"


def remote_code_model(tmp_path: Path, tiny_model_dir: Path) -> tuple[Path, Path]:
    """The tiny model with a config that asks for custom code; the code would leave a marker file if it ran."""
    folder = tmp_path / "custom"
    shutil.copytree(tiny_model_dir, folder)
    marker = tmp_path / "remote-code-ran"
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "configuration_evil.EvilConfig"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "configuration_evil.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
        "from transformers import LlamaConfig\nclass EvilConfig(LlamaConfig):\n    model_type = 'llama'\n"
    )
    return folder, marker


def test_remote_code_does_not_run_unless_the_entry_opts_in(tmp_path: Path, tiny_model_dir: Path) -> None:
    folder, marker = remote_code_model(tmp_path, tiny_model_dir)
    spec = ModelSpec("custom", path=str(folder))
    assert spec.trust_remote_code is False
    try:
        TransformersBackend(spec, str(folder))
    except ConfigError as exc:
        assert "custom" in str(exc)
    assert not marker.exists()
    (tmp_path / "m.toml").write_text(f'[models.custom]\npath = "{folder}"\ntrust_remote_code = "yes"\n')
    with pytest.raises(ConfigError, match="trust_remote_code must be true or false"):
        load_matrix(tmp_path / "m.toml")


def test_tokens_in_the_environment_are_never_written(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "OPENAI_API_KEY"):
        monkeypatch.setenv(name, HF_SECRET)
    data = pytester.path / "data" / "mednli"
    data.mkdir(parents=True)
    (data / "mli_test_v1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in mednli_records()))
    pytester.makepyfile(test_mednli=(REPO / "benchmarks" / "test_mednli.py").read_text())
    pytester.makeini("[pytest]\n")
    write_models(pytester, base_wrong=set(), candidate_wrong=set())
    result = run(pytester, "-k", "mednli", "--clue-report-samples", subprocess=True)
    result.assert_outcomes(passed=2)
    written = [p for p in pytester.path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".sqlite3" for p in written) and any(p.name == "index.html" for p in written)
    assert [p for p in written if HF_SECRET.encode() in p.read_bytes()] == []
    assert HF_SECRET not in result.stdout.str() + result.stderr.str()


def test_a_data_file_linked_from_outside_the_data_folder_is_refused(pytester: pytest.Pytester) -> None:
    outside = pytester.path / "elsewhere"
    outside.mkdir()
    (outside / "mli_test_v1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in mednli_records()))
    (pytester.path / "data" / "mednli").mkdir(parents=True)
    (pytester.path / "data" / "mednli" / "mli_test_v1.jsonl").symlink_to(outside / "mli_test_v1.jsonl")
    pytester.makepyfile(test_mednli=(REPO / "benchmarks" / "test_mednli.py").read_text())
    pytester.makeini("[pytest]\n")
    write_models(pytester, base_wrong=set(), candidate_wrong=set())
    result = run(pytester, "-k", "mednli")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*outside the data folder*--clue-data mednli=FILE*"])
    explicit = run(pytester, "-k", "mednli", "--clue-data", f"mednli={outside / 'mli_test_v1.jsonl'}")
    explicit.assert_outcomes(passed=2)


@pytest.mark.parametrize("name", ["longhealth_task1", "longhealth_task2", "longhealth_task3", "mednli", "meqsum"])
def test_every_task_refuses_a_data_file_that_resolves_outside_the_data_folder(tmp_path: Path, name: str) -> None:
    """One find_data for every task: LongHealth once had its own, without this refusal."""
    from clue.errors import DataError
    from clue.tasks import get_task

    task = get_task(name)
    outside = tmp_path / "elsewhere" / task.data_files[0]
    outside.parent.mkdir()
    outside.write_text("{}")
    folder = tmp_path / "data" / task.data_folders()[0]
    folder.mkdir(parents=True)
    (folder / task.data_files[0]).symlink_to(outside)
    with pytest.raises(DataError, match="outside the data folder"):
        task.find_data(tmp_path / "data")
