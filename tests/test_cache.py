"""The generation store: keyed on everything that determines an output, resumable, corruption-proof, shared by
several processes, and enough on its own to rescore."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from clue.cache import GenerationStore, StoredRun, StoreWarning, generation_key
from clue.types import ChatMessage, Generation, GenerationSettings, Prompt

PROMPT = Prompt("mednli", "s1", (ChatMessage("system", "sys"), ChatMessage("user", "SENTENCE_1: a")), 20)
FP = {"engine": "transformers 5", "files": {"model.safetensors": "abc"}, "chat_template": "t1"}
GEN = Generation("s1", "ENTAILMENT", 12, 2, "stop", 0.5)


class CountingBackend:
    """Answers each prompt with its sample id; the prompt with sample id "bad" fails."""

    loads = 0

    def __init__(self) -> None:
        self.seen: list[str] = []

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
    assert again.reused == 2 and again.missing == [2]  # the failure was not stored: it is retried
    assert [g.sample_id for g in again.outputs if g is not None] == ["s1", "s2"]  # each under its own id


def test_key_changes_with_everything_that_determines_the_output() -> None:
    base = generation_key(FP, PROMPT, GenerationSettings())
    assert base == generation_key(dict(FP), PROMPT, GenerationSettings(batch_size=32))  # batching does not count
    variants = [
        generation_key({**FP, "files": {"model.safetensors": "abd"}}, PROMPT, GenerationSettings()),
        generation_key({**FP, "chat_template": "t2"}, PROMPT, GenerationSettings()),
        generation_key({**FP, "engine": "vllm 0.33"}, PROMPT, GenerationSettings()),
        generation_key(FP, replace(PROMPT, max_new_tokens=21), GenerationSettings()),
        generation_key(FP, replace(PROMPT, messages=(ChatMessage("user", "SENTENCE_1: b"),)), GenerationSettings()),
        generation_key(FP, PROMPT, GenerationSettings(temperature=1.0)),
        generation_key(FP, PROMPT, GenerationSettings(seed=2)),
    ]
    assert base not in variants and len(set(variants)) == len(variants)


def test_put_get_roundtrip_and_failed_generations_are_not_stored(tmp_path: Path) -> None:
    store = GenerationStore(tmp_path / "g.sqlite3")
    store.put("k1", "m", "mednli", GEN)
    store.put("k2", "m", "mednli", replace(GEN, text="", error="boom", finish_reason="error"))
    assert store.get_many(["k1", "k2", "k3"]) == {"k1": GEN}
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
    first = store.folder_fingerprint(weights.parent)
    assert store.folder_fingerprint(weights.parent) == first
    weights.write_bytes(b"weights v2!")
    assert store.folder_fingerprint(weights.parent) != first
