"""Problem Summary (BioNLP-2023 Task 1A): the problem list of a SOAP progress note (Level 1, ROUGE + BERTScore +
UMLS-entity F1, 3-shot).

Reads the task's CSV as CLUE uses it: columns Subjectives, Assessment, Summary (the shared task's release names
the first "Subjective Sections"; both are accepted), with an optional "File ID". The `;` separators of Summary
become `, ` as in CLUE; a trailing `;` is dropped (CLUE meant to drop it, but its `Summary[:-1]` was never
assigned, leaving a trailing ", ").
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from clue.errors import DataError
from clue.tasks.base import check_unique_ids, refuse_repeated_columns, require_size
from clue.tasks.text import TextTask
from clue.types import Sample
from clue.util import strict_json
from clue.util.strict_json import JSONProblem

SUBJECTIVE = ("Subjectives", "Subjective Sections")


def clean_summary(summary: str) -> str:
    return summary.strip().rstrip(";").strip().replace(";", ", ")


class ProblemSummary(TextTask):
    name = "problem_summary"
    title = "Problem Summary"
    level = 1
    primary_metric = "rougeL"
    n_shots = 3
    max_new_tokens = 512
    uses_umls = True
    data_files = ("BioNLP2023-1A-Test.csv", "problem_summary.csv")
    system_prompt = (
        "You are a highly skilled and detail-oriented assistant, specifically trained to assist medical "
        "professionals in interpreting and extracting key information from medical documents. Your primary "
        "responsibility will be to analyze discharge letters from hospitals. You will receive an excerpt of such a "
        "discharge letter. Your task is to summarize the diagnoses and problems that led to the patient's "
        "hospitalization."
    )
    wording_terms = ("diagnos", "problem")
    wordings = (
        "You assist physicians. Read the excerpt from a hospital discharge letter and summarize the diagnoses and "
        "problems that led to the patient's admission.",
        "Given part of a discharge summary, briefly list the patient's diagnoses and problems that explain this "
        "hospitalization.",
        "You are a clinical documentation assistant. From the excerpt below, write a short problem list: the "
        "diagnoses and problems the patient was hospitalized for.",
        "Summarize, in a few words each, the diagnoses and medical problems that caused this hospital stay, based on "
        "the letter excerpt you receive.",
    )

    def load(self, path: Path) -> list[Sample]:
        try:
            text = strict_json.read_text(path)
        except JSONProblem as exc:
            raise DataError(path, str(exc)) from None
        try:
            reader = csv.reader(io.StringIO(text, newline=""))
            header = [c.strip() for c in next(reader, [])]
            rows = list(reader)
        except csv.Error as exc:  # csv's messages ("field larger than field limit") hold no field text
            raise DataError(path, f"malformed CSV: {exc}") from None
        subjective = next((c for c in SUBJECTIVE if c in header), None)
        missing = ([] if subjective else ["Subjectives"]) + [c for c in ("Assessment", "Summary") if c not in header]
        if missing:  # the header is not echoed: a file without one starts with a record
            raise DataError(path, f"no column(s) {', '.join(missing)} in the header's {len(header)} columns")
        refuse_repeated_columns(path, header, (*SUBJECTIVE, "Assessment", "Summary", "File ID"))
        assert subjective is not None
        col = {name: header.index(name) for name in (subjective, "Assessment", "Summary", "File ID") if name in header}
        samples = []
        for rowno, row in enumerate(rows, start=2):
            where = f"row {rowno}"
            if not row:
                continue  # a blank line
            if len(row) > len(header):
                raise DataError(path, "more fields than the header has", record=where)
            values = {name: row[i] if i < len(row) else "" for name, i in col.items()}
            for field in (subjective, "Assessment", "Summary"):
                if not values[field].strip():
                    raise DataError(path, "empty", record=where, field=field)
                require_size(path, values[field], record=where, field=field)
            sample_id = values.get("File ID", "").strip() or where
            fields = {"Subjectives": values[subjective], "Assessment": values["Assessment"]}
            samples.append(Sample(sample_id, fields, clean_summary(values["Summary"]), f"{path}:{where}"))
        check_unique_ids(path, self.name, samples)
        return samples

    def render_user(self, sample: Sample) -> str:
        return (
            "--------------BEGIN DISCHARGE LETTER--------------\n"
            f"{sample.fields['Subjectives']}\n\n{sample.fields['Assessment']}\n"
            "--------------END DISCHARGE LETTER--------------\n"
            "Now respond with the list of diagnoses and patient problems. Do not generate anything else."
        )

    def truncatable(self, sample: Sample) -> str | None:
        return str(sample.fields["Subjectives"])
