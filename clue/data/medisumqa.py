"""Build MeDiSumQA: question-answer pairs about a hospital stay, written by an LLM from discharge summaries.

The shape of CLUE's pipeline (generate_qas.py + post_process_qas.py), through any clue backend:

1. Discharge notes are sampled with a fixed seed. The "Discharge Instructions" section (the letter to the
   patient) is split off: the LLM writes question-answer pairs from it, and the task's input is the rest of the
   note, so the answer cannot be copied from the text the model under test sees. Notes without that section are
   skipped.
2. The generator answers in `Q: ... / A: ...` lines; generations go through the generation store (an interrupted
   build resumes; a re-run with the same model and notes reuses them).
3. Every pair gets ROUGE-L and BERTScore F1 between question and answer; a high score means the answer merely
   repeats the question. As CLUE, the lowest-similarity pairs are kept, alternating between the ROUGE-L and the
   BERTScore ranking, until `top_k` distinct pairs are chosen (CLUE could pick one pair twice; here never).

Not reproduced: CLUE's 1-shot statement-extraction example comes from one specific MIMIC note, and its prompt
targeted Mixtral through TGI; the prompt below is clue's own, recorded in the build report.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clue.backends import load_backend
from clue.backends.data_use import check_data_use
from clue.data.mimic import NOTE_COLUMNS, read_rows, write_json_array
from clue.errors import ConfigError, DataError
from clue.metrics import rouge
from clue.metrics.bertscore import SCIBERT, SCIBERT_LAYER, BertScoreConfig
from clue.metrics.scorers import Scorers
from clue.models.matrix import load_matrix
from clue.models.tiny import bertscore_stand_in
from clue.run.store_loop import StoredRun
from clue.store.sqlite import GenerationStore
from clue.types import ChatMessage, GenerationSettings, Prompt

TASK = "medisumqa_build"
SECTION = re.compile(r"^\s*Discharge Instructions:\s*$", re.IGNORECASE | re.MULTILINE)
NEXT_SECTION = re.compile(r"^\s*Followup Instructions:\s*$", re.IGNORECASE | re.MULTILINE)
PAIR = re.compile(
    r"^\s*Q(?:uestion)?\s*\d*\s*[:.)-]\s*(?P<q>.+?)\s*\n\s*A(?:nswer)?\s*\d*\s*[:.)-]\s*(?P<a>.+?)\s*$",
    re.IGNORECASE | re.MULTILINE,
)
SYSTEM = (
    "You help build a benchmark for clinical language models. You are given the discharge instructions a hospital "
    "wrote to a patient. Write questions the patient could ask about their hospital stay, each with a short answer "
    "that is stated in the instructions. Write each pair as two lines:\nQ: <question>\nA: <answer>\n"
    "Write at most five pairs and nothing else."
)


@dataclass
class QABuildReport:
    notes_read: int = 0
    sampled: int = 0
    without_instructions: int = 0
    generations_reused: int = 0
    failed_generations: int = 0
    pairs_parsed: int = 0
    written: int = 0
    sha256: str = ""
    warnings: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [
            f"discharge notes read: {self.notes_read}; sampled: {self.sampled}; "
            f"skipped without a Discharge Instructions section: {self.without_instructions}",
            f"generations reused from the store: {self.generations_reused}; failed: {self.failed_generations}",
            f"question-answer pairs parsed: {self.pairs_parsed}; written: {self.written} (sha256 {self.sha256[:16]})",
            *self.warnings,
        ]


def split_instructions(text: str) -> tuple[str, str] | None:
    """(note without its Discharge Instructions section, the instructions), or None when there are none."""
    start = SECTION.search(text)
    if start is None:
        return None
    end = NEXT_SECTION.search(text, start.end())
    stop = end.start() if end else len(text)
    instructions = text[start.end() : stop].strip()
    if not instructions:
        return None
    return text[: start.start()] + text[stop:], instructions


def parse_pairs(output: str) -> list[tuple[str, str]]:
    pairs = []
    for match in PAIR.finditer(output):
        q, a = match.group("q").strip(), match.group("a").strip()
        if q and a:
            pairs.append((q, a))
    return list(dict.fromkeys(pairs))


def select(pairs: list[dict[str, object]], top_k: int) -> list[dict[str, object]]:
    """Lowest question-answer similarity first, alternating the ROUGE-L and BERTScore rankings, no repeats."""
    by_rouge = sorted(range(len(pairs)), key=lambda i: (float(pairs[i]["rouge_l"]), i))  # type: ignore[arg-type]
    by_bert = sorted(range(len(pairs)), key=lambda i: (float(pairs[i]["bertscore"]), i))  # type: ignore[arg-type]
    chosen: list[int] = []
    taken: set[int] = set()
    cursors = [0, 0]
    rankings = [by_rouge, by_bert]
    turn = 0
    while len(chosen) < min(top_k, len(pairs)):
        ranking = rankings[turn]
        while ranking[cursors[turn]] in taken:
            cursors[turn] += 1
        pick = ranking[cursors[turn]]
        chosen.append(pick)
        taken.add(pick)
        turn = 1 - turn
    return [pairs[i] for i in chosen]


def build(
    notes_path: Path,
    matrix: Path,
    model: str,
    out: Path,
    *,
    notes: int = 4000,
    top_k: int = 500,
    seed: int = 1,
    cache_dir: Path = Path(".clue-cache"),
    bertscore_model: str = "allenai/scibert_scivocab_uncased",
) -> QABuildReport:
    report = QABuildReport()
    models = load_matrix(matrix)
    if model not in models:
        raise ConfigError(f"model matrix {matrix}: no entry {model!r}; entries: {', '.join(models)}")
    check_data_use(models[model], ["medisumqa"])  # MIMIC-IV-Note text: only where the data-use guard clears it
    order, sources = _sample_notes(notes_path, notes, seed, report)
    store = GenerationStore(cache_dir / "generations.sqlite3")
    texts = _write_questions(models, model, order, sources, store, cache_dir, report)
    pairs: list[dict[str, object]] = []
    for note_id in order:
        hadm, text, _ = sources[note_id]
        for q, a in parse_pairs(texts.get(note_id, "")):
            pairs.append({"note_id": note_id, "hadm_id": hadm, "discharge_summary": text, "Question": q, "Answer": a})
    report.pairs_parsed = len(pairs)
    if pairs:
        _score_pairs(pairs, bertscore_model, cache_dir, store)
    chosen = select(pairs, top_k)
    if len(chosen) < top_k:
        report.warnings.append(f"warning: only {len(chosen)} pairs, fewer than the {top_k} asked for (paper: 453)")
    records = [{k: v for k, v in p.items() if k not in ("rouge_l", "bertscore")} for p in chosen]
    report.written, report.sha256 = len(records), write_json_array(out, records)
    return report


def _sample_notes(
    notes_path: Path, notes: int, seed: int, report: QABuildReport
) -> tuple[list[str], dict[str, tuple[str, str, str]]]:
    """The sampled notes with Discharge Instructions, in sampling order, and note_id -> (hadm_id, the note without
    its instructions, the instructions). Two passes over the file: ids first, texts of the sampled ones second."""
    ids: list[str] = []
    for line, row in read_rows(notes_path, NOTE_COLUMNS, "discharge notes (ids)"):
        report.notes_read += 1
        if not row["note_id"].strip():
            raise DataError(notes_path, "empty", record=f"line {line}", field="note_id")
        ids.append(row["note_id"].strip())
    random.Random(seed).shuffle(ids)
    wanted = set(ids[:notes])
    report.sampled = len(wanted)
    sources: dict[str, tuple[str, str, str]] = {}
    for _, row in read_rows(notes_path, NOTE_COLUMNS, "discharge notes (texts)"):
        note_id = row["note_id"].strip()
        if note_id in wanted:
            parts = split_instructions(row["text"])
            if parts is None:
                report.without_instructions += 1
            else:
                sources[note_id] = (row["hadm_id"].strip(), *parts)
    return [i for i in ids[:notes] if i in sources], sources


def _write_questions(
    models: dict[str, Any],
    model: str,
    order: list[str],
    sources: dict[str, tuple[str, str, str]],
    store: GenerationStore,
    cache_dir: Path,
    report: QABuildReport,
) -> dict[str, str]:
    """note_id -> the model's question-answer text, generated through the store (an interrupted build resumes, a
    repeated one reuses); a failed generation's text is empty, so it gives no pairs."""
    prompts = [
        Prompt(
            TASK,
            note_id,
            (ChatMessage("system", SYSTEM), ChatMessage("user", sources[note_id][2])),
            512,
            truncatable=sources[note_id][2],
        )
        for note_id in order
    ]
    backend = load_backend(models[model], cache_dir, models)
    settings = GenerationSettings()
    try:
        run = StoredRun.plan(
            store,
            model,
            backend.fingerprint(store),
            prompts,
            settings,
            per_sample_outputs=backend.per_sample_outputs,
            batch_sensitive=backend.batch_sensitive,
        )
        report.generations_reused = run.reused
        generations = run.generate(backend, settings, desc=f"{model}: writing questions")
    finally:
        backend.close()
    report.failed_generations = sum(g.error is not None for g in generations)
    return {g.sample_id: g.text for g in generations}


def _score_pairs(pairs: list[dict[str, object]], bertscore_model: str, cache_dir: Path, store: GenerationStore) -> None:
    """ROUGE-L and BERTScore F1 between each question and its answer: how much the answer repeats the question."""
    scores = rouge.rouge([str(p["Question"]) for p in pairs], [str(p["Answer"]) for p in pairs])
    layers = SCIBERT_LAYER if bertscore_model == SCIBERT else None
    scorers = Scorers(
        bertscore_config=BertScoreConfig(bertscore_model, layers),
        cache_dir=cache_dir,
        store=store,
        bertscore_build=bertscore_stand_in(bertscore_model, cache_dir),
    )
    berts = scorers.bertscore_pairs([str(p["Question"]) for p in pairs], [str(p["Answer"]) for p in pairs])
    for p, r, b in zip(pairs, scores, berts, strict=True):
        p["rouge_l"], p["bertscore"] = r["rougeL"], b[2]
