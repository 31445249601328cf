"""Problem Summary (BioNLP-2023 Task 1A): the problem list of a SOAP progress note (Level 1, ROUGE + BERTScore +
UMLS-entity F1, 3-shot).

Reads the task's CSV as CLUE uses it: columns Subjectives, Assessment, Summary (the shared task's release names
the first "Subjective Sections"; both are accepted), with an optional "File ID". The `;` separators of Summary
become `, ` as in CLUE; a trailing `;` is dropped (CLUE meant to drop it, but its `Summary[:-1]` was never
assigned, leaving a trailing ", ").
"""

from __future__ import annotations

import csv
from pathlib import Path

from clue.errors import DataError
from clue.tasks.base import check_unique_ids
from clue.tasks.text import TextTask
from clue.types import Sample

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

    def load(self, path: Path) -> list[Sample]:
        try:
            with path.open(newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                header = reader.fieldnames or []
                subjective = next((c for c in SUBJECTIVE if c in header), None)
                missing = [c for c in ("Assessment", "Summary") if c not in header]
                if subjective is None:
                    missing.insert(0, "Subjectives")
                if missing:
                    raise DataError(path, f"no column(s) {', '.join(missing)} (header: {header})")
                rows = list(reader)
        except UnicodeDecodeError as exc:
            raise DataError(path, f"not UTF-8 text ({exc})") from None
        except csv.Error as exc:
            raise DataError(path, f"malformed CSV: {exc}") from None
        samples = []
        for rowno, row in enumerate(rows, start=2):
            where = f"row {rowno}"
            if None in row:
                raise DataError(path, "more fields than the header has", record=where)
            for field in (subjective, "Assessment", "Summary"):
                assert field is not None
                if not (row.get(field) or "").strip():
                    raise DataError(path, "empty", record=where, field=field)
            summary = clean_summary(row["Summary"])
            sample_id = (row.get("File ID") or "").strip() or where
            fields = {"Subjectives": row[subjective or "Subjectives"], "Assessment": row["Assessment"]}
            samples.append(Sample(sample_id, fields, summary, f"{path}:{where}"))
        check_unique_ids(path, samples)
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
