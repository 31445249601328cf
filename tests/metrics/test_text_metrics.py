"""ROUGE against hand-computed values, BERTScore against bert_score.score, UMLS-entity F1 through scispacy's real
EntityLinker on a KB and pipeline built offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clue.metrics import rouge, umls
from clue.metrics.bertscore import BertScoreConfig, BertScorer
from tests.helpers import REPO


# -- ROUGE ---------------------------------------------------------------------------------------------------
def test_rouge_hand_computed() -> None:
    # pred: the cat sat on the mat / ref: the cat is on the mat
    # unigrams: the x2, cat, on, mat overlap -> 5 of 6 each side; bigrams: the-cat, on-the, the-mat -> 3 of 5;
    # LCS: the cat on the mat -> 5 of 6
    (scores,) = rouge.rouge(["the cat sat on the mat"], ["the cat is on the mat"], use_stemmer=False)
    assert scores["rouge1"] == pytest.approx(5 / 6)
    assert scores["rouge2"] == pytest.approx(3 / 5)
    assert scores["rougeL"] == pytest.approx(5 / 6)


def test_rouge_precision_recall_asymmetry_hand_computed() -> None:
    # pred: chest pain (2 tokens) / ref: acute chest pain today (4 tokens): P=1, R=1/2 -> F=2/3
    (scores,) = rouge.rouge(["Chest pain."], ["acute chest pain today"], use_stemmer=False)
    assert scores["rouge1"] == pytest.approx(2 / 3)
    assert scores["rouge2"] == pytest.approx(2 * 1 * (1 / 3) / (1 + 1 / 3))  # 1 of 1 pred bigram, 1 of 3 ref


def test_rouge_stemming_changes_the_score() -> None:
    pred, ref = ["patient was vomiting"], ["patient vomits"]
    plain = rouge.rouge(pred, ref, use_stemmer=False)[0]["rouge1"]
    stemmed = rouge.rouge(pred, ref, use_stemmer=True)[0]["rouge1"]
    assert plain == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))  # only "patient" matches
    assert stemmed == pytest.approx(2 * (2 / 3) * 1 / (2 / 3 + 1))  # vomiting/vomits -> vomit


def test_rouge_empty_and_identical() -> None:
    empty, same = rouge.rouge(["", "How is diabetes treated?"], ["How is diabetes treated?"] * 2)
    assert empty == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    assert same == {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0}


def test_rouge_equals_the_reference_package() -> None:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    preds = ["What are the side effects of metformin?", "Is aspirin safe during pregnancy?"]
    refs = ["What side effects does metformin have?", "Can I take aspirin while pregnant?"]
    for ours, p, r in zip(rouge.rouge(preds, refs), preds, refs, strict=True):
        ref = scorer.score(r, p)
        assert ours == {k: ref[k].fmeasure for k in ("rouge1", "rouge2", "rougeL")}


def test_rust_rouge_is_bit_identical_when_installed() -> None:
    pytest.importorskip("rouge_score_rs", reason="rouge-score-rs not installed (optional [fast] extra)")
    preds = ["What are the side effects of metformin?", "", "Is aspirin safe during pregnancy? aspirin!", "running"]
    refs = ["What side effects does metformin have?", "x", "Can I take aspirin while pregnant?", "runs"]
    for stem in (True, False):
        assert rouge.rouge(preds, refs, use_stemmer=stem, rust=True) == rouge.rouge(
            preds, refs, use_stemmer=stem, rust=False
        )
    assert rouge.implementation().startswith("rouge-score-rs")


def test_rouge_length_mismatch() -> None:
    with pytest.raises(ValueError, match="2 predictions for 1 references"):
        rouge.rouge(["a", "b"], ["a"])


# -- BERTScore -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from clue.models.tiny import build_tiny_bert

    return build_tiny_bert(tmp_path_factory.mktemp("bert") / "tiny-bert")


def test_bertscore_equals_bert_score_called_directly(tiny_bert: Path) -> None:
    import bert_score

    cands = ["the patient has chest pain", "type 2 diabetes mellitus", "What are the side effects of aspirin?"]
    refs = ["patient with chest pain", "diabetes type 2", "Which side effects does aspirin have?"]
    ours = BertScorer(BertScoreConfig(str(tiny_bert), num_layers=2, batch_size=2)).score(cands, refs)
    p, r, f = bert_score.score(cands, refs, model_type=str(tiny_bert), num_layers=2)
    for (op, orr, of), ep, er, ef in zip(ours, p.tolist(), r.tolist(), f.tolist(), strict=True):
        assert (op, orr, of) == pytest.approx((ep, er, ef), abs=1e-6)


def test_bertscore_empty_is_zero_and_identical_is_one(tiny_bert: Path) -> None:
    scorer = BertScorer(BertScoreConfig(str(tiny_bert), num_layers=2))
    empty, blank_ref, same = scorer.score(
        ["", "chest pain", "sepsis due to pneumonia"], ["x", "  ", "sepsis due to pneumonia"]
    )
    assert empty == (0.0, 0.0, 0.0) and blank_ref == (0.0, 0.0, 0.0)
    assert same == pytest.approx((1.0, 1.0, 1.0), abs=1e-5)


def test_bertscore_unloadable_model_is_a_clear_error(tmp_path: Path) -> None:
    from clue.errors import ClueError

    with pytest.raises(ClueError, match="cannot be loaded"):
        BertScorer(BertScoreConfig(str(tmp_path / "missing"), num_layers=2))


def test_scibert_is_what_en_sci_means() -> None:
    from bert_score.utils import lang2model, model2layers

    from clue.metrics.bertscore import SCIBERT, SCIBERT_LAYER

    assert lang2model["en-sci"] == SCIBERT and model2layers[SCIBERT] == SCIBERT_LAYER


# -- UMLS-entity F1 ------------------------------------------------------------------------------------------
def test_set_prf_hand_computed() -> None:
    assert umls.set_prf({"a", "b", "c"}, {"b", "c", "d", "e"}) == pytest.approx(
        (2 / 3, 2 / 4, 2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    )
    assert umls.set_prf(set(), {"a"}) == (0.0, 0.0, 0.0)
    assert umls.set_prf({"a"}, set()) == (0.0, 0.0, 0.0)
    assert umls.set_prf({"a", "b"}, {"b", "a"}) == (1.0, 1.0, 1.0)


@pytest.fixture(scope="module")
def extractor(tmp_path_factory: pytest.TempPathFactory) -> umls.ScispacyExtractor:
    config = umls.prepare_offline_config(
        umls.ScispacyConfig("ruler", str(REPO / "fixtures/umls/kb.jsonl")), tmp_path_factory.mktemp("cache")
    )
    return umls.ScispacyExtractor(config)


def test_scispacy_linker_maps_aliases_to_canonical_concepts(extractor: umls.ScispacyExtractor) -> None:
    found = extractor.extract(
        [
            "Admitted with CHF exacerbation and a new lung infection.",
            "Heart failure; pneumonia",
            "Nothing clinical here.",
        ]
    )
    assert found[0] == {"Heart failure", "Pneumonia"}
    assert found[1] == {"Heart failure", "Pneumonia"}
    assert found[2] == set()
    assert umls.set_prf(found[0], found[1]) == (1.0, 1.0, 1.0)


def test_custom_index_is_built_once_and_cached(tmp_path: Path) -> None:
    kb = tmp_path / "kb.jsonl"
    kb.write_text(
        json.dumps({"concept_id": "X:1", "canonical_name": "Sepsis", "aliases": ["sepsis", "septicemia"]}) + "\n"
    )
    first = umls.prepare_offline_config(umls.ScispacyConfig("ruler", str(kb)), tmp_path / "cache")
    index = Path(first.linker) / "nmslib_index.bin"
    stamp = index.stat().st_mtime_ns
    second = umls.prepare_offline_config(umls.ScispacyConfig("ruler", str(kb)), tmp_path / "cache")
    assert second == first and index.stat().st_mtime_ns == stamp
    assert umls.ScispacyExtractor(first).extract(["septicemia"]) == [{"Sepsis"}]


def test_missing_spacy_model_says_how_to_install() -> None:
    from clue.errors import ClueError

    with pytest.raises(ClueError, match="en_core_sci_sm"):
        umls.ScispacyExtractor(umls.ScispacyConfig("en_core_sci_sm_not_installed"))


def test_bertscore_truncates_to_the_position_limit_when_the_tokenizer_has_none(tmp_path: Path) -> None:
    """SciBERT ships no model_max_length: bert-score 0.3.13 + transformers 5 then failed with OverflowError on
    every input. Inputs are cut at the model's 512 positions (the authors' bert-score fork does the same), so
    anything after the first 512 tokens does not change the score."""
    from tests.helpers.standins import build_bert_without_max_length

    folder = build_bert_without_max_length(tmp_path / "bert")
    scorer = BertScorer(BertScoreConfig(str(folder), num_layers=2))
    long, longer = " ".join(["the patient has chest pain"] * 300), " ".join(["the patient has chest pain"] * 400)
    (first,) = scorer.score([long], ["the patient has pain"])
    (second,) = scorer.score([longer], ["the patient has pain"])
    assert first == second and all(0.0 < v <= 1.0 for v in first)


def test_umls_abbreviation_detector_is_off_by_default_as_in_clue(tmp_path: Path) -> None:
    """CLUE's eval/utils.py get_UMLS_entities passes resolve_abbreviations=True to the linker but never adds the
    AbbreviationDetector, so nothing is resolved: the default pipeline has no detector; the option adds it."""
    kb = str(REPO / "fixtures/umls/kb.jsonl")
    default = umls.ScispacyExtractor(umls.prepare_offline_config(umls.ScispacyConfig("ruler", kb), tmp_path))
    assert "abbreviation_detector" not in default.nlp.pipe_names
    assert default.linker.resolve_abbreviations is False
    config = umls.ScispacyConfig("ruler", kb, resolve_abbreviations=True)
    resolving = umls.ScispacyExtractor(umls.prepare_offline_config(config, tmp_path))
    assert "abbreviation_detector" in resolving.nlp.pipe_names
