"""MeDiSumQA: patient-oriented questions on MIMIC-IV discharge summaries (Level 2, ROUGE + BERTScore + UMLS-entity
F1, 1-shot).

Reads CLUE's MeDiSumQA JSON: a list of records with `discharge_summary`, `Question`, `Answer` (JSON Lines also
accepted); an id is taken from `id`, `note_id` or `hadm_id` when present. Prompts follow CLUE's eval_MeDiSumQA.py.
"""

from __future__ import annotations

from pathlib import Path

from clue.tasks.base import check_unique_ids, read_json_records, record_id, require_str
from clue.tasks.text import TextTask
from clue.types import Sample


class MeDiSumQA(TextTask):
    name = "medisumqa"
    title = "MeDiSumQA"
    level = 2
    primary_metric = "rougeL"
    n_shots = 1
    max_new_tokens = 512
    uses_umls = True
    data_files = ("MeDiSumQA.json", "MeDiSumQA.jsonl")
    system_prompt = (
        "You are a highly skilled assistant, specifically trained to assist lays in understanding and extracting "
        "key information from medical documents. Your primary responsibility will be to interprete discharge "
        "letters from hospitals. You will receive such a discharge letter. You should carefully review the "
        "contents and accurately answer questions related to this document. Only respond with the correct answer "
        "to the question. Answer briefly without mentioning a lot of specific details. If the question is about "
        "measurements (e.g., lab values), interpret their meaning in relation to the question, rather than writing "
        "down the values. Do not generate anything else."
    )
    wording_terms = ("question", "answer")
    wordings = (
        "You help lay people understand hospital discharge letters. Read the letter and answer the question about it "
        "briefly and accurately. Explain measurements rather than quoting values. Give only the answer.",
        "Answer the patient's question using only the discharge letter provided. Keep the answer short and in plain "
        "language; do not list detailed values, say what they mean. Write nothing except the answer.",
        "You are a medical assistant. A discharge letter and a question follow. Reply with a brief, correct answer to"
        " the question; if it concerns lab values or other measurements, interpret them instead of repeating them.",
        "Read this hospital discharge letter carefully, then answer the question that follows in one or two short "
        "sentences a non-expert can understand. Output only the answer.",
    )

    def load(self, path: Path) -> list[Sample]:
        samples = []
        for where, record in read_json_records(
            path, ("discharge_summary", "Question", "Answer", "id", "note_id", "hadm_id")
        ):
            summary = require_str(path, where, record, "discharge_summary")
            question = require_str(path, where, record, "Question")
            answer = require_str(path, where, record, "Answer")
            ident = record_id(path, where, record, ("id", "note_id", "hadm_id"))
            sample_id = f"{ident}/{question}" if ident is not None else where
            samples.append(
                Sample(
                    sample_id, {"discharge_summary": summary, "Question": question}, answer.strip(), f"{path}:{where}"
                )
            )
        check_unique_ids(path, self.name, samples)
        return samples

    def render_user(self, sample: Sample) -> str:
        return (
            "--------------BEGIN DISCHARGE LETTER--------------\n"
            f"{sample.fields['discharge_summary']}\n"
            "--------------END DISCHARGE LETTER--------------\n"
            f"{sample.fields['Question']}"
        )

    def truncatable(self, sample: Sample) -> str | None:
        return str(sample.fields["discharge_summary"])
