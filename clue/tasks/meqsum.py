"""MeQSum: summarise a consumer health question as one concise question (Level 1, ROUGE + BERTScore, 3-shot).

Reads the published `MeQSum_ACL2019_BenAbacha_Demner-Fushman.xlsx` as it is (first sheet, header row File, CHQ,
Summary; the sheet carries many empty trailing columns). Public data, CC BY 4.0 (Ben Abacha & Demner-Fushman,
ACL 2019). Prompts follow CLUE's eval_meqsum.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clue.errors import DataError
from clue.tasks.base import check_unique_ids, refuse_repeated_columns, require_size
from clue.tasks.text import TextTask
from clue.types import Sample

COLUMNS = ("CHQ", "Summary")


class MeQSum(TextTask):
    name = "meqsum"
    title = "MeQSum"
    level = 1
    primary_metric = "rougeL"
    public_data = True
    n_shots = 3
    max_new_tokens = 512
    data_files = ("MeQSum_ACL2019_BenAbacha_Demner-Fushman.xlsx",)
    system_prompt = (
        "You are a highly skilled assistant, specifically trained to assist patients. Your primary responsibility "
        "will be to summarize patient inquiries as concise question. You will be given such a patient inquiry. You "
        "will be expected to summarize and rewrite the inquiry as a concise question. Only write out the question. "
        "Do not add any other text."
    )
    wording_terms = ("question",)
    wordings = (
        "You help patients. Rewrite the patient's message as one short question that asks what they want to know. "
        "Write only the question.",
        "Summarize the following consumer health inquiry as a single concise question. Output the question and "
        "nothing else.",
        "A patient has sent a long message. Condense it into the one question a doctor should answer, in as few words"
        " as possible. Reply with that question only.",
        "You are a clinical assistant triaging patient messages. Turn the inquiry into a brief, self-contained "
        "question. Do not add greetings, explanations or any other text.",
    )

    def load(self, path: Path) -> list[Sample]:
        """The first sheet's rows. A damaged workbook fails inside openpyxl in many ways (a bad zip, broken XML,
        a missing part, a malformed cell) and at any row, since read-only mode parses lazily: every such failure is
        one DataError naming the file."""
        import openpyxl

        try:
            book = openpyxl.load_workbook(path, read_only=True, data_only=True)
            try:
                return self._samples(path, book[book.sheetnames[0]])
            finally:
                book.close()
        except DataError:
            raise
        except Exception as exc:  # openpyxl, zipfile and the XML parsers raise dozens of types for a damaged file
            raise DataError(path, f"not a readable .xlsx workbook ({type(exc).__name__})") from None

    def _samples(self, path: Path, sheet: Any) -> list[Sample]:
        rows = sheet.iter_rows(values_only=True)
        header = [str(c).strip() if c is not None else "" for c in next(rows, ())]
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise DataError(path, f"the first sheet has no column(s) {', '.join(missing)} in its header row")
        refuse_repeated_columns(path, header, (*COLUMNS, "File"))
        col = {name: header.index(name) for name in (*COLUMNS, "File") if name in header}
        samples = []
        for rowno, row in enumerate(rows, start=2):
            if row is None or all(c is None or str(c).strip() == "" for c in row):
                continue  # trailing empty rows
            values = {}
            for name in COLUMNS:
                value = row[col[name]] if col[name] < len(row) else None
                if not isinstance(value, str) or not value.strip():
                    raise DataError(path, "empty or not text", record=f"row {rowno}", field=name)
                values[name] = require_size(path, value, record=f"row {rowno}", field=name)
            file_id = row[col["File"]] if "File" in col and col["File"] < len(row) else None
            sample_id = str(file_id).strip() if file_id else f"row {rowno}"
            samples.append(Sample(sample_id, {"CHQ": values["CHQ"]}, values["Summary"].strip(), f"{path}:row {rowno}"))
        check_unique_ids(path, self.name, samples)
        return samples

    def render_user(self, sample: Sample) -> str:
        return (
            "--------------PATIENT INQUIRY--------------\n"
            f"{sample.fields['CHQ']}\n"
            "--------------END PATIENT INQUIRY--------------"
        )
