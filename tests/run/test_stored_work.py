"""Generation throughput's correctness side (clue/backends/transformers.py, clue/run/store_loop.py): a run whose work is
all stored loads nothing, and a prompt's output never depends on the prompts generated with it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from clue.backends.transformers import TransformersBackend
from clue.models.matrix import ModelSpec
from clue.tasks import get_task
from clue.types import GenerationSettings, Prompt
from tests.helpers import FIXTURE_DATA, REPO

# a plugin for the child pytest: which heavy modules the run imported, and how many tokenizers it loaded
RECORDER = """
import json, os, sys

def pytest_configure(config):
    from transformers import PreTrainedTokenizerBase
    original = PreTrainedTokenizerBase.from_pretrained.__func__
    def counting(cls, *args, **kwargs):
        config._clue_tokenizers = getattr(config, "_clue_tokenizers", 0) + 1
        return original(cls, *args, **kwargs)
    if "torch" not in sys.modules:  # importing transformers' tokenizer base loads no torch
        PreTrainedTokenizerBase.from_pretrained = classmethod(counting)

def pytest_unconfigure(config):
    loaded = {m: m in sys.modules for m in ("torch", "transformers.modeling_utils")}
    loaded["tokenizers_loaded"] = getattr(config, "_clue_tokenizers", 0)
    with open(os.environ["CLUE_RECORD"], "w") as f:
        json.dump(loaded, f)
"""


def _run(folder: Path, record: Path) -> dict[str, object]:
    command = [sys.executable, "-m", "pytest", "benchmarks", "-p", "no:cacheprovider", "-q", "-p", "recorder"]
    command += ["-k", "longhealth_task1 or mednli", "--clue-limit", "3", "--clue-longhealth-max-tokens", "1024"]
    command += ["--clue-cache-dir", str(folder / "cache"), "--clue-reports-dir", str(folder / "reports")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), str(REPO)]), "CLUE_RECORD": str(record)}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    loaded: dict[str, object] = json.loads(record.read_text())
    return loaded


def test_a_run_whose_generations_are_all_stored_imports_no_torch_and_loads_no_tokenizer(tmp_path: Path) -> None:
    """The second run of the same cases finds every generation (and LongHealth's token counts) in the store: it
    imports no torch and no transformers modelling code and loads no tokenizer; the first run does all three."""
    (tmp_path / "recorder.py").write_text(RECORDER)
    first = _run(tmp_path, tmp_path / "first.json")
    assert first["torch"] and first["transformers.modeling_utils"] and first["tokenizers_loaded"]
    second = _run(tmp_path, tmp_path / "second.json")
    assert second == {"torch": False, "transformers.modeling_utils": False, "tokenizers_loaded": 0}
    session = json.loads((tmp_path / "reports/clue-session.json").read_text())
    assert session["loads"] == {"base": 0, "candidate": 0} and not any(session["generated"].values())
    assert session["backend_s"] < 1.0  # nothing but bookkeeping happened inside the backends


def _prompts(task: str, file: str, n: int, max_new: int) -> list[Prompt]:
    t = get_task(task)
    shots, scored = t.split(t.load(FIXTURE_DATA / file), 1)
    return [replace(p, max_new_tokens=max_new) for p in t.build_prompts(shots, scored[:n], None)]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_a_prompt_gives_the_same_output_alone_and_among_short_or_long_prompts(tiny_model_dir: Path, dtype: str) -> None:
    """Same prompt, same text and token count, whatever else is generated with it and in what order (the tiny
    model; the real-model tier checks the same on SmolLM2). In bfloat16, left-padded batches of 8 kept 1 to 4 of 6
    outputs of each tiny model."""
    spec = ModelSpec("tiny", path=str(tiny_model_dir), dtype=dtype)
    backend = TransformersBackend(spec, str(tiny_model_dir))
    short = _prompts("mednli", "mednli/mli_test_v1.jsonl", 6, 48)
    long = _prompts("medisumcode", "medisumcode/MeDiSumCode.json", 2, 48)
    settings = GenerationSettings()
    alone = [backend.generate([p], settings)[0] for p in short]
    among_short = backend.generate(short[::-1], settings)[::-1]
    among_long = backend.generate([long[0], *short, *long[1:]], settings)[1:-1]
    assert any(g.text for g in alone)
    for a, s, lo in zip(alone, among_short, among_long, strict=True):
        assert (a.text, a.completion_tokens) == (s.text, s.completion_tokens) == (lo.text, lo.completion_tokens)
