"""MeDiSumCode: ICD-10 coding of MIMIC-IV discharge summaries (Level 2, 1-shot).

Reads CLUE's MeDiSumCode file: records with `text` (the discharge summary), `icd_codes` (a list of
`{"code": ..., "description": ...}`) and `hadm_id`. CLUE's generator writes JSON Lines while its evaluator reads a
JSON array; both are accepted. Prompts follow CLUE's eval_MeDiSumCode.py; see `clue.metrics.icd10` for how codes
are parsed and scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from clue.errors import DataError
from clue.metrics import icd10
from clue.metrics.scorers import Scorers
from clue.tasks.base import (
    Task,
    check_unique_ids,
    read_json_records,
    record_id,
    require_str,
    strip_reasoning,
)
from clue.types import Generation, MetricSpec, Sample, SampleScore

ANSWER_PREFIX = "ICD-10 Codes: "


class MeDiSumCode(Task):
    name = "medisumcode"
    title = "MeDiSumCode"
    level = 2
    primary_metric = "icd_exact_f1"
    n_shots = 1
    max_new_tokens = 512
    data_files = ("MeDiSumCode.json", "MeDiSumCode.jsonl")
    system_prompt = (
        "You are a highly skilled and detail-oriented assistant, specifically trained to assist medical "
        "professionals in interpreting and extracting key information from medical documents. Your primary "
        "responsibility will be to analyze discharge letters from hospitals. You will be given such a discharge "
        "letter. Your task is to identify all primary and secondary diagnoses from the report and list their "
        "respective ICD-10 codes."
    )
    wording_terms = ("ICD-10",)
    wordings = (
        "You are a clinical coder. Read the discharge letter and list the ICD-10 codes of all primary and secondary "
        "diagnoses.",
        "Assign ICD-10 codes to every primary and secondary diagnosis documented in the following hospital discharge "
        "letter. List the codes.",
        "From the discharge summary you are given, identify each diagnosis, primary and secondary, and give its "
        "ICD-10 code as a list.",
        "You support hospital coding staff. Extract all diagnoses from the report and output the corresponding ICD-10"
        " codes, one per diagnosis.",
    )

    def metrics(self, scorers: Scorers | None = None) -> tuple[MetricSpec, ...]:
        return icd10.metric_specs()

    def load(self, path: Path) -> list[Sample]:
        samples = []
        for where, record in read_json_records(path, ("text", "icd_codes", "hadm_id", "code")):
            text = require_str(path, where, record, "text")
            codes_field = record.get("icd_codes")
            if not isinstance(codes_field, list):
                raise DataError(path, "missing or not a list", record=where, field="icd_codes")
            codes = []
            for i, entry in enumerate(codes_field):
                code = entry.get("code") if isinstance(entry, dict) else None
                if not isinstance(code, str) or not icd10.normalize(code):
                    raise DataError(
                        path,
                        "expected an object with a non-empty string 'code'",
                        record=where,
                        field=f"icd_codes[{i}]",
                    )
                normalized = icd10.normalize(code)
                if normalized not in codes:
                    codes.append(normalized)
            sample_id = record_id(path, where, record, ("hadm_id",)) or where
            samples.append(Sample(sample_id, {"text": text}, tuple(codes), f"{path}:{where}"))
        check_unique_ids(path, self.name, samples)
        return samples

    def render_user(self, sample: Sample) -> str:
        return (
            "--------------BEGIN DISCHARGE LETTER--------------\n"
            f"{sample.fields['text']}\n"
            "--------------END DISCHARGE LETTER--------------\n"
            "Now return the list of diagnoses ICD-10 codes you found. Only list the ICD-10 codes. "
            "Do not generate anything else."
        )

    def render_answer(self, sample: Sample) -> str:
        # MIMIC's dotless codes, as CLUE shows them
        return ANSWER_PREFIX + ", ".join(sample.reference)

    def copies_shot(self, shots: Sequence[Sample], generation: Generation, score: SampleScore) -> bool:
        """The same ICD-10 code set as a shot's answer (in any order or format), not only the same text."""
        codes = set(score.parsed or [])
        return bool(codes) and any(codes == set(s.reference) for s in shots)

    def truncatable(self, sample: Sample) -> str | None:
        return str(sample.fields["text"])

    def detail(self, sample: Sample, score: SampleScore) -> dict[str, Any]:
        predicted = list(score.parsed or [])
        gold = list(sample.reference)
        return {
            "missing_codes": [c for c in gold if c not in predicted],
            "extra_codes": [c for c in predicted if c not in gold],
            "invalid_codes": [c for c in predicted if not icd10.is_valid_code(c)],
        }

    def score(self, sample: Sample, generation: Generation) -> SampleScore:
        predicted = icd10.parse_codes(strip_reasoning(generation.text))
        scores = icd10.score_codes(predicted, list(sample.reference))
        return SampleScore(sample.id, scores, predicted, bool(predicted))
