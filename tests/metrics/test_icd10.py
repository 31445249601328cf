"""ICD-10 parsing and scoring: hand-computed values, the reference script's defects, and the real code set."""

from __future__ import annotations

import pytest

from clue.metrics import icd10


def test_parses_codes_with_and_without_dots_in_order_without_duplicates() -> None:
    text = "ICD-10 Codes: I25.10, E1165, I25.10, N18.30; also I10."
    assert icd10.parse_codes(text) == ["I2510", "E1165", "N1830", "I10"]


def test_accepts_u_codes_that_clue_excluded() -> None:
    assert icd10.parse_codes("U07.1, J12.82") == ["U071", "J1282"]


def test_accepts_letter_in_third_place_only_for_real_categories() -> None:
    assert icd10.parse_codes("C4A.0 Z3A.35 M1A.071") == ["C4A0", "Z3A35", "M1A071"]
    assert icd10.parse_codes("HbA1c 7.2%, repeat A1C in 3 months") == []


def test_ignores_lower_case_words_and_partial_tokens() -> None:
    assert icd10.parse_codes("the patient i25.10 had ICD10 coding and an I2 lesion") == []


def test_seven_character_codes_with_placeholder() -> None:
    assert icd10.parse_codes("T45.1X5A, W01.0XXA") == ["T451X5A", "W010XXA"]


def test_prf_hand_computed() -> None:
    # predicted {I2510, E119, J189}, gold {I2510, E1165}: 1 exact hit
    p, r, f = icd10.prf(["I25.10", "E11.9", "J18.9"], ["I2510", "E1165"])
    assert (p, r) == pytest.approx((1 / 3, 1 / 2))
    assert f == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))
    # 3-character: {I25, E11, J18} vs {I25, E11}: 2 hits
    p, r, f = icd10.prf(["I25.10", "E11.9", "J18.9"], ["I2510", "E1165"], approximate=True)
    assert (p, r, f) == pytest.approx((2 / 3, 1.0, 0.8))


def test_duplicates_count_once() -> None:
    assert icd10.prf(["X999", "X999", "X999", "I10"], ["I10"]) == icd10.prf(["X999", "I10"], ["I10"])


def test_empty_gold_does_not_divide_by_zero() -> None:
    """CLUE's compute_icd_f1 divided by len(gold) unguarded: a record without codes crashed the run."""
    assert icd10.prf([], []) == (1.0, 1.0, 1.0)
    assert icd10.prf(["I10"], []) == (0.0, 0.0, 0.0)
    assert icd10.prf([], ["I10"]) == (0.0, 0.0, 0.0)


def test_f1_is_one_exactly_for_equal_sets_in_any_order() -> None:
    assert icd10.prf(["E119", "I10"], ["I10", "E11.9"]) == (1.0, 1.0, 1.0)


def test_valid_share_uses_the_real_code_set() -> None:
    assert icd10.valid_share(["I2510", "E1165", "U071"]) == 1.0
    # I25.9 'Chronic ischemic heart disease, unspecified' exists; I25.99 does not
    assert icd10.is_valid_code("I25.9")
    assert not icd10.is_valid_code("I25.99")
    assert icd10.valid_share(["I2510", "I2599"]) == 0.5
    assert icd10.valid_share([]) == 0.0


# Real ICD-10-CM codes of every shape, valid per the CMS tabular list (category, subcategory, billable code).
# Z66/B20/F99/R99/O80/C7A/C7B/D3A are categories that form a block of their own (the audit's failing cases).
VALID_CODES = [
    "Z66",
    "B20",
    "F99",
    "R99",
    "O80",
    "C7A",
    "C7B",
    "D3A",  # single-category blocks
    "C50",
    "E11",
    "I25",
    "N18",
    "J45",
    "K21",
    "U07",
    "O09",
    "T36",
    "Z38",
    "Z68",  # non-billable categories
    "I10",
    "Q00",
    "R69",  # billable 3-character categories
    "C4A",
    "Z3A",
    "M1A",  # a letter in the third place
    "E119",
    "E11.9",
    "E1165",
    "I2510",
    "I25.10",
    "N1830",
    "J189",
    "K219",
    "A419",
    "R6520",
    "Z7901",
    "F329",
    "I480",
    "N179",
    "E785",
    "Z951",
    "C509",
    "C50911",
    "E6601",
    "Z6841",
    "Z0000",
    "U071",
    "U099",
    "Z3A35",
    "M1A071",
    "C4A0",
    "C7A010",
    "D3A012",
    "S72001A",
    "T360X1A",
    "T451X5A",
    "W010XXA",
    "S72001",  # 7-character codes and an extended subcategory
]
INVALID_CODES = ["I2599", "E1199", "B12", "A1C", "Z99999", "C7A9", "R0", "I20-I25", "A00-B99", "U00", ""]


@pytest.mark.parametrize("code", VALID_CODES)
def test_real_codes_of_every_shape_are_valid(code: str) -> None:
    assert icd10.is_valid_code(code)


@pytest.mark.parametrize("code", INVALID_CODES)
def test_non_codes_chapters_and_blocks_are_invalid(code: str) -> None:
    assert not icd10.is_valid_code(code)


def test_single_category_blocks_are_parsed_and_count_as_valid() -> None:
    """D3A/C7A/C7B have a letter in the third place and are blocks of their own: parsed, and valid."""
    text = "ICD-10 Codes: D3A.012, C7A.010, C7B.00, Z66, B20"
    codes = icd10.parse_codes(text)
    assert codes == ["D3A012", "C7A010", "C7B00", "Z66", "B20"]
    assert icd10.valid_share(codes) == 1.0


def test_chapters_and_blocks_are_not_codes() -> None:
    assert not icd10.is_valid_code("I20-I25")
    assert not icd10.is_valid_code("")


def test_score_codes_has_every_declared_metric() -> None:
    scores = icd10.score_codes(["I10"], ["I10", "E119"])
    assert set(scores) == {m.name for m in icd10.metric_specs()}
    assert all(0.0 <= v <= 1.0 for v in scores.values())
