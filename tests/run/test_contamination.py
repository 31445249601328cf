"""The contamination diagnostic's parts: the statistic (by hand, by an independent computation and by simulation),
the neighbours (generated texts), the records a results file and a stored baseline carry (generated hostile
values), and each engine's target log-probabilities against a full forward pass."""

from __future__ import annotations

import dataclasses
import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clue.records import BaselineProbes, ContaminationRecord, Count, RecordError
from clue.run.contamination.probes import ProbeSettings
from clue.run.contamination.scores import ProbeScores, finding
from clue.statistics.calibration import adapted_items
from clue.statistics.contamination import ItemLogprobs, against_reference, diagnose, difference_ci, item_statistic
from clue.tasks.neighbours import FUNCTION_WORDS, MIN_WORDS, neighbours, vocabulary, words
from tests.helpers import REPO
from tests.helpers.hostile import bytes_mutation, csv_mutation, names
from tests.helpers.hostile_files import HOSTILE

pytest_plugins = ["pytester"]

LEVEL: dict[str, Any] = {"alpha": 0.05, "resamples": 2000, "seed": 1}


# -- the statistic --------------------------------------------------------------------------------------------------
def test_the_item_statistic_by_hand() -> None:
    candidate = ItemLogprobs(-1.0, (-2.0, -3.0))
    base = ItemLogprobs(-2.5, (-2.5, -3.5))
    # exact gain 1.5; neighbour gains 0.5 and 0.5: d = 1.0
    assert item_statistic(candidate, base) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same, non-empty"):
        item_statistic(candidate, ItemLogprobs(-1.0, (-1.0,)))


def test_diagnose_matches_an_independent_computation() -> None:
    rng = np.random.default_rng(3)
    base = [ItemLogprobs(float(-rng.uniform(1, 4)), tuple(-rng.uniform(1, 4, 4))) for _ in range(80)]
    candidate = [
        ItemLogprobs(b.exact + 0.6 + float(rng.normal(0, 0.3)), tuple(n + 0.2 for n in b.neighbours)) for b in base
    ]
    found = diagnose(candidate, base, margin=0.1, item_threshold=0.5, **LEVEL)
    d = np.array(
        [
            (c.exact - b.exact) - np.mean(np.subtract(c.neighbours, b.neighbours))
            for c, b in zip(candidate, base, strict=True)
        ]
    )
    assert found.statistic == pytest.approx(d.mean())
    assert found.exact_gain == pytest.approx(np.mean([c.exact - b.exact for c, b in zip(candidate, base, strict=True)]))
    assert found.neighbour_gain == pytest.approx(0.2)
    assert found.memorised == int((d > 0.5).sum()) and found.n == 80
    # the percentile bootstrap against scipy's (other draws: agreement to the Monte Carlo error)
    from scipy import stats as scipy_stats

    theirs = scipy_stats.bootstrap((d,), np.mean, confidence_level=0.9, method="percentile", random_state=1)
    assert found.ci_low == pytest.approx(theirs.confidence_interval.low, abs=0.01)
    assert found.ci_high == pytest.approx(theirs.confidence_interval.high, abs=0.01)
    assert found.flagged is (found.ci_low > 0.1)


def test_a_model_without_memorisation_is_flagged_at_most_at_the_level_by_simulation() -> None:
    """Null: the candidate's gain on the exact answer and on its neighbours come from one distribution (legitimate
    adaptation with item-to-item noise). At margin 0 the one-sided test's false-flag rate is about alpha; at the
    default margin it is far below."""
    rng = np.random.default_rng(7)
    flagged_at_zero = flagged_at_default = 0
    runs = 400
    for _ in range(runs):
        base = [ItemLogprobs(-2.0, (-2.5,) * 4) for _ in range(60)]
        shift = float(rng.normal(0.4, 0.2))  # the adaptation's gain, the same on exact and neighbours on average
        candidate = [
            ItemLogprobs(-2.0 + shift + float(rng.normal(0, 0.3)), tuple(-2.5 + shift + rng.normal(0, 0.3, 4)))
            for _ in range(60)
        ]
        flagged_at_zero += diagnose(
            candidate, base, margin=0.0, item_threshold=0.5, alpha=0.05, resamples=400, seed=1
        ).flagged
        flagged_at_default += diagnose(
            candidate, base, margin=0.1, item_threshold=0.5, alpha=0.05, resamples=400, seed=1
        ).flagged
    assert flagged_at_zero / runs < 0.09  # alpha 0.05, with the percentile bootstrap's small-sample slack
    assert flagged_at_default / runs < 0.01


def test_diagnose_refuses_unpaired_or_non_finite_input() -> None:
    item = ItemLogprobs(-1.0, (-1.0,))
    with pytest.raises(ValueError, match="same, non-zero"):
        diagnose([item], [], margin=0.1, item_threshold=0.5, **LEVEL)
    with pytest.raises(ValueError, match="finite"):
        diagnose([ItemLogprobs(math.nan, (-1.0,))], [item], margin=0.1, item_threshold=0.5, **LEVEL)


def _items(
    rng: np.random.Generator, n: int, gain: float, extra: float
) -> tuple[list[ItemLogprobs], list[ItemLogprobs]]:
    return adapted_items(rng, n, gain=gain, learnt=extra)


def test_the_reference_comparison_by_hand_and_against_scipy() -> None:
    probed = ([ItemLogprobs(-1.0, (-2.0,)), ItemLogprobs(-1.0, (-1.0,))], [ItemLogprobs(-2.0, (-2.0,))] * 2)
    reference = ([ItemLogprobs(-1.5, (-2.0,))], [ItemLogprobs(-2.0, (-2.0,))])
    # probed d: 1.0 and 0.0 (mean 0.5); reference d: 0.5
    found = against_reference(probed, reference, **LEVEL)
    assert (found.probed, found.reference, found.statistic) == pytest.approx((0.5, 0.5, 0.0))
    assert (found.n_probed, found.n_reference) == (2, 1)
    rng = np.random.default_rng(5)
    found = against_reference(_items(rng, 60, 0.5, 0.3), _items(rng, 90, 0.5, 0.0), **LEVEL)
    assert found.statistic == pytest.approx(found.probed - found.reference)
    # the two-sample percentile bootstrap against scipy's (each sample resampled on its own; other draws)
    from scipy import stats as scipy_stats

    a, b = rng.normal(0.3, 1.0, 50), rng.gamma(1.0, 1.0, 70)
    low, high = difference_ci(list(a), list(b), **LEVEL)
    theirs = scipy_stats.bootstrap(
        (a, b), lambda x, y, axis: x.mean(axis) - y.mean(axis), confidence_level=0.9, method="percentile",
        random_state=1,
    )  # fmt: skip
    assert low == pytest.approx(theirs.confidence_interval.low, abs=0.02)
    assert high == pytest.approx(theirs.confidence_interval.high, abs=0.02)
    # not the paired interval: the two samples' spreads add
    assert high - low > mean_width(a) and high - low > mean_width(b)


def mean_width(values: np.ndarray[Any, np.dtype[np.float64]]) -> float:
    low, high = np.quantile(
        values[np.random.default_rng(1).integers(0, len(values), (2000, len(values)))].mean(axis=1), [0.05, 0.95]
    )
    return float(high - low)


def test_the_reference_comparison_flags_adaptation_at_most_at_the_level_and_contamination_by_simulation() -> None:
    """Null: however much the candidate adapted (the same gain on probed and reference items, the exact answer
    favoured as a task-learnt model favours it), the false-flag rate is about alpha. The neighbour statistic at
    its margin flags the same runs nearly always; trained items (an extra gain on probed items only) are flagged."""
    rng = np.random.default_rng(11)
    runs = 300
    level: dict[str, Any] = {"alpha": 0.05, "resamples": 400, "seed": 1}
    flagged = {"adapted": 0, "adapted, neighbour statistic": 0, "contaminated": 0}
    for _ in range(runs):
        learnt = float(rng.uniform(0.2, 0.6))  # how much more the adapted model prefers right answers: all items
        probed, reference = _items(rng, 50, 0.5, learnt), _items(rng, 50, 0.5, learnt)
        flagged["adapted"] += against_reference(probed, reference, **level).flagged
        flagged["adapted, neighbour statistic"] += diagnose(*probed, margin=0.1, item_threshold=0.5, **level).flagged
        seen = _items(rng, 50, 0.5, learnt + 0.3)
        flagged["contaminated"] += against_reference(seen, reference, **level).flagged
    assert flagged["adapted"] / runs < 0.09, flagged  # alpha 0.05, with the percentile bootstrap's slack
    assert flagged["adapted, neighbour statistic"] / runs > 0.9, flagged
    assert flagged["contaminated"] / runs > 0.9, flagged


def test_the_reference_comparison_refuses_empty_unpaired_or_non_finite_input() -> None:
    item = ItemLogprobs(-1.0, (-1.0,))
    with pytest.raises(ValueError, match="reference: 0 candidate"):
        against_reference(([item], [item]), ([], []), **LEVEL)
    with pytest.raises(ValueError, match="probed: 1 candidate and 2 base"):
        against_reference(([item], [item, item]), ([item], [item]), **LEVEL)
    with pytest.raises(ValueError, match="reference: a log-probability"):
        against_reference(([item], [item]), ([ItemLogprobs(-1.0, (math.inf,))], [item]), **LEVEL)
    with pytest.raises(ValueError, match="non-empty"):
        difference_ci([], [1.0], **LEVEL)


def _scores(task: str, prefix: str, side: list[ItemLogprobs]) -> ProbeScores:
    return ProbeScores(task, {f"{prefix}{i}": ("digest", item) for i, item in enumerate(side)}, ProbeSettings.of(200))


def test_with_reference_items_the_flag_is_the_reference_comparison_s_not_the_neighbour_statistic_s() -> None:
    """A candidate that learnt the task (d high on every item, test or not) is flagged by the neighbour statistic
    and cleared by the reference comparison; one that gained on the test items only is flagged by both; a
    reference side that cannot be compared leaves the neighbour statistic's flag, and says why."""
    rng = np.random.default_rng(2)
    options: dict[str, Any] = {"mode": "report", "margin": 0.1, "item_threshold": 0.5, **LEVEL}

    def case(extra_on_test: float, reference: Any = "pairs") -> ContaminationRecord:
        test, unseen = _items(rng, 40, 0.5, 0.5 + extra_on_test), _items(rng, 40, 0.5, 0.5)
        mine, base = _scores("t", "s", test[0]), _scores("t", "s", test[1])
        if reference == "pairs":
            reference = (_scores("t", "r", unseen[0]), _scores("t", "r", unseen[1]).hashed())
        return finding(mine, base.hashed(), reference=reference, **options)

    learnt = case(0.0)
    assert learnt.status == "clear" and learnt.statistic is not None and learnt.ci_low is not None
    assert learnt.ci_low > 0.1  # the neighbour statistic alone would have flagged it
    assert learnt.reference_items == 40 and learnt.reference_ci_low is not None and learnt.reference_ci_low <= 0
    assert "minus d on 40 unseen reference items" in learnt.summary and "against neighbours alone" in learnt.summary
    seen = case(0.4)
    assert seen.status == "flagged" and seen.reference_ci_low is not None and seen.reference_ci_low > 0
    assert seen.statistic is not None and seen.reference_d is not None
    assert seen.reference_statistic == pytest.approx(seen.statistic - seen.reference_d)
    assert ContaminationRecord.from_json(json.loads(json.dumps(seen.to_json())), "x") == seen
    unscored = case(0.0, reference="the model's reference items were not scored")
    assert unscored.status == "flagged" and unscored.reference_statistic is None
    assert "no reference comparison: the model's reference items were not scored" in unscored.summary
    few = case(0.0, reference=(_scores("t", "r", [ItemLogprobs(-1, (-1,))]), {}))
    assert few.reference_reason is not None and "0 reference items" in few.reference_reason


def test_stored_probes_that_do_not_match_say_so_and_few_probed_items_say_why() -> None:
    """A base side whose probes match too few of the model's (a stored baseline saved from another data file or clue
    version) is "not available" with the count, never "not applicable" with a false reason (labels or letters);
    a test file with too few items to probe says that."""
    rng = np.random.default_rng(3)
    options: dict[str, Any] = {"mode": "fail", "margin": 0.1, "item_threshold": 0.5, **LEVEL}
    test = _items(rng, 30, 0.5, 0.5)
    mine, other = _scores("t", "s", test[0]), _scores("t", "elsewhere-", test[1])
    unmatched = finding(mine, other.hashed(), **options)
    assert unmatched.status == "not available" and unmatched.undecided is not None
    assert "match 0 of the model's 30 probes" in (unmatched.reason or "") and "labels" not in (unmatched.reason or "")
    few = finding(_scores("t", "s", test[0][:4]), _scores("t", "s", test[1][:4]).hashed(), **options)
    assert few.status == "not applicable" and few.undecided is None and "4 items" in (few.reason or "")


# -- neighbours -----------------------------------------------------------------------------------------------------
texts = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=300)


@given(text=texts, pool=st.lists(texts, max_size=8), k=st.integers(1, 5), share=st.floats(0.05, 1.0))
@settings(max_examples=300, deadline=None)
def test_neighbours_of_any_text_keep_its_layout_and_change_its_content_words(
    text: str, pool: list[str], k: int, share: float
) -> None:
    vocab = vocabulary([text, *pool])
    made = neighbours(text, vocab, k=k, share=share, seed="s")
    assert made == neighbours(text, vocab, k=k, share=share, seed="s")  # deterministic
    if not made:
        return
    assert len(made) == k
    for near in made:
        assert near != text
        assert len(near.split()) == len(text.split())  # the same number of whitespace-separated tokens
        kept = [w for w in text.split() if w.casefold() in FUNCTION_WORDS]
        assert all(w in near.split() for w in kept)  # function words stay where they were


def test_short_answers_and_labels_have_no_neighbours() -> None:
    vocab = vocabulary(["entailment", "contradiction", "neutral", "What are the side effects of metformin?"])
    assert neighbours("entailment", vocab, k=4, share=0.25, seed="s") == ()
    assert neighbours("What is it?", vocab, k=4, share=0.25, seed="s") == ()  # 3 words < MIN_WORDS
    assert MIN_WORDS == 4
    made = neighbours("What are the side effects of metformin?", vocab, k=4, share=0.25, seed="s")
    assert len(made) == 4 and all(m.startswith("What are the ") and m.endswith("?") for m in made)
    assert words("The PSA of Mr. Smith's") == ["PSA", "mr", "smith's"]


# -- records ----------------------------------------------------------------------------------------------------------
def test_a_contamination_record_round_trips_and_says_itself_in_one_line() -> None:
    record = ContaminationRecord(
        "flagged", "report", statistic=0.8, ci_low=0.6, ci_high=1.0, exact_gain=1.2, neighbour_gain=0.4,
        memorised=Count(27, 60), margin=0.1, item_threshold=0.5, neighbours=4,
    )  # fmt: skip
    data = record.to_json()
    assert data["flagged"] is True and data["status"] == "flagged" and data["memorised"] == {"n": 27, "of": 60}
    assert ContaminationRecord.from_json(data, "x") == record
    assert "27 of 60 items look memorised (45%)" in record.summary and "[+0.600, +1.000]" in record.summary
    assert "--clue-contamination-reference" in record.summary  # a flag from the neighbours alone says what it can't
    cleared = dataclasses.replace(record, status="clear")
    assert "--clue-contamination-reference" not in cleared.summary
    compared = dataclasses.replace(record, reference_statistic=0.3, reference_ci_low=0.1, reference_ci_high=0.5,
                                   reference_d=0.5, reference_items=40)  # fmt: skip
    assert "--clue-contamination-reference" not in compared.summary and "40 unseen" in compared.summary
    unavailable = ContaminationRecord("not available", "report", reason="ReplayBackend gives no log-probabilities")
    assert ContaminationRecord.from_json(unavailable.to_json(), "x") == unavailable
    assert unavailable.to_json()["flagged"] is False
    with pytest.raises(RecordError, match="status"):
        ContaminationRecord.from_json({**data, "status": "maybe"}, "x")


hostile = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@given(items=st.lists(st.fixed_dictionaries({"id": hostile, "digest": hostile, "logprobs": hostile}), max_size=4))
@settings(max_examples=300, deadline=None)
def test_a_baseline_s_probe_scores_are_read_or_refused_by_name_never_crash(items: list[dict[str, Any]]) -> None:
    data = {"settings": {"version": 1}, "items": items}
    try:
        read = BaselineProbes.from_json(data, "baseline.json, entry meqsum/base, contamination")
    except RecordError as exc:
        assert str(exc).startswith("baseline.json, entry meqsum/base, contamination")
        return
    assert read is not None
    for digest, values in read.items.values():
        assert isinstance(digest, str) and len(values) >= 2
        assert all(math.isfinite(v) and v <= 0 for v in values)


def test_a_baseline_entry_with_probe_scores_round_trips() -> None:
    probes = BaselineProbes({"version": 1, "items": 200}, {"abc": ("d1", (-1.0, -2.0, -3.0))})
    assert BaselineProbes.from_json(probes.to_json(), "x") == probes
    with pytest.raises(RecordError, match="listed twice"):
        BaselineProbes.from_json({"settings": {}, "items": [probes.to_json()["items"][0]] * 2}, "x")


TEST_FILE = REPO / "fixtures/data/problem_summary/BioNLP2023-1A-Test.csv"


@settings(max_examples=40, deadline=None)
def repunctuated(text: str, how: str) -> str:
    """`text` as a re-export may have changed its punctuation."""
    if how == "drop":
        return "".join(c for c in text if c.isalnum() or c.isspace())
    if how == "period":
        return text.rstrip(".") + "."
    if how == "hyphens":
        return text.replace(" ", "-", 2)
    if how == "semicolons":
        return text.replace(",", ";").replace(".", ",")
    return text


@given(
    again=st.lists(st.integers(0, 23), unique=True, max_size=8),
    new=st.integers(1, 4),
    spacing=st.sampled_from([" ", "  ", "\n", " \t "]),
    upper=st.booleans(),
    punctuation=st.sampled_from(["keep", "drop", "period", "hyphens", "semicolons"]),
)
def test_test_items_beyond_the_limit_under_new_ids_and_respaced_are_no_reference_items(
    again: list[int], new: int, spacing: str, upper: bool, punctuation: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A reference file that holds test items again, under ids of its own and with their answers' spacing, case or
    punctuation changed (a re-export; punctuation was once enough to count a test item as unseen), leaves them all
    out, those beyond --clue-limit too (a model trained on the test file
    saw those as well): only the items that are not in the test file are reference items."""
    import csv
    import io

    from clue.config import DataOptions, GateOptions, Settings
    from clue.run.catalog import DataCatalog

    rows = list(csv.reader(io.StringIO(TEST_FILE.read_text())))
    header, body = rows[0], rows[1:]
    written = [[f"re-{i}", *body[i][1:-1], spacing.join(body[i][-1].split())] for i in again]
    written = [[*r[:-1], r[-1].upper() if upper else r[-1]] for r in written]
    written = [[*r[:-1], repunctuated(r[-1], punctuation)] for r in written]
    written += [[f"new-{k}", *body[k][1:-1], f"{body[k][-1]} resolved"] for k in range(new)]
    reference = tmp_path_factory.mktemp("reference") / "unseen.csv"
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([header, *written])
    reference.write_text(text.getvalue(), encoding="utf-8")
    settings_ = Settings(
        REPO,
        data=DataOptions(data={"problem_summary": TEST_FILE}, limit=3),
        gate=GateOptions(contamination_reference={"problem_summary": reference}),
    )
    catalog = DataCatalog(settings_)
    task = catalog.task("problem_summary")
    data = catalog.data(task)
    assert data is not None and len(data.scored) == 3
    items = catalog.reference_items(task, data)
    assert items is not None
    assert sorted(s.id for s in items.samples) == [f"new-{k}" for k in range(new)]
    assert items.left_out == len(again)


# -- engines ----------------------------------------------------------------------------------------------------------
def test_target_logprobs_equal_a_full_forward_pass_per_target(tiny_model_dir: Path) -> None:
    """The batched, cache-sharing computation gives each target's log-probability as one forward pass over the
    prompt and that target alone does (targets of different lengths, padded in one batch)."""
    import torch
    from transformers import AutoModelForCausalLM

    from clue.backends.transformers import target_logprobs

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    rng = random.Random(0)
    context = [rng.randrange(5, 200) for _ in range(17)]
    targets = [[rng.randrange(5, 200) for _ in range(n)] for n in (1, 6, 3, 9)]
    scores = target_logprobs(model, "cpu", context, targets)
    for ids, score in zip(targets, scores, strict=True):
        with torch.inference_mode():
            logits = model(input_ids=torch.tensor([context + ids])).logits[0].log_softmax(-1)
        expected = sum(float(logits[len(context) - 1 + i, t]) for i, t in enumerate(ids))
        assert score.tokens == len(ids)
        assert score.logprob == pytest.approx(expected, abs=1e-4)


def test_vllm_prompt_logprobs_are_summed_over_the_target_s_positions() -> None:
    from clue.backends.vllm import prompt_logprob_sum

    class Logprob:
        def __init__(self, value: float):
            self.logprob = value

    ids = [7, 8, 9, 10]
    returned = [None, {8: Logprob(-0.5), 3: Logprob(-0.1)}, {9: Logprob(-1.0)}, {10: -2.0}]  # a float: older releases
    assert prompt_logprob_sum(returned, ids, 2) == pytest.approx(-3.0)


def test_a_server_s_echoed_prompt_logprobs_give_the_transformers_backend_s_scores(tiny_model_dir: Path) -> None:
    from clue.backends.openai_server import OpenAIServerBackend
    from clue.backends.transformers import TransformersBackend
    from clue.models.matrix import ModelSpec
    from clue.types import ChatMessage, Prompt, TargetRequest
    from tests.helpers.openai_server import FakeOpenAIServer, tiny_model_echo

    chat = (ChatMessage("system", "Summarise."), ChatMessage("user", "My knee hurts when I run. What should I do?"))
    requests = [
        TargetRequest(Prompt("t", f"s{i}", chat, 8), ("What helps knee pain when running?", "What helps knee ache?"))
        for i in range(3)
    ]
    local = TransformersBackend(ModelSpec("tiny", path=str(tiny_model_dir)), str(tiny_model_dir))
    expected = local.score_targets(requests)
    with FakeOpenAIServer(echo=tiny_model_echo(tiny_model_dir)) as server:
        common = {"path": "served", "backend": "openai", "base_url": server.base_url, "tokenizer": str(tiny_model_dir)}
        unasked = OpenAIServerBackend(ModelSpec.of("served", **common), "served").score_targets(requests)
        assert not server.state.requests  # the entry does not say the server gives prompt log-probabilities
        assert all(s.error and "prompt_logprobs = true" in s.error for s in unasked)
        spec = ModelSpec.of("served", **common, prompt_logprobs=True)
        got = OpenAIServerBackend(spec, "served").score_targets(requests)
        sent = server.state.requests
    assert all(r.get("echo") is True and r.get("max_tokens") == 1 for r in sent) and len(sent) == 6
    for e, g in zip(expected, got, strict=True):
        assert g.error is None and [s.tokens for s in g.scores] == [s.tokens for s in e.scores]
        assert [s.logprob for s in g.scores] == pytest.approx([s.logprob for s in e.scores], abs=1e-4)


def test_a_server_scores_probes_after_it_generated_in_the_same_run(tiny_model_dir: Path) -> None:
    """The defect: the request pool's stop flag, set when a generation batch ended, stayed set, so every probe
    request of a run that also generated failed "run stopped" and the diagnostic never ran through a server. A
    closed backend still refuses work."""
    from clue.backends.openai_server import OpenAIServerBackend
    from clue.models.matrix import ModelSpec
    from clue.types import ChatMessage, GenerationSettings, Prompt, TargetRequest
    from tests.helpers.openai_server import FakeOpenAIServer, tiny_model_echo

    chat = (ChatMessage("user", "My knee hurts when I run. What should I do?"),)
    prompts = [Prompt("t", f"s{i}", chat, 4) for i in range(2)]
    requests = [TargetRequest(p, ("What helps knee pain when running?", "What helps knee ache?")) for p in prompts]
    with FakeOpenAIServer(echo=tiny_model_echo(tiny_model_dir)) as server:
        spec = ModelSpec.of(
            "served", path="served", backend="openai", base_url=server.base_url, tokenizer=str(tiny_model_dir),
            prompt_logprobs=True, max_retries=0,
        )  # fmt: skip
        backend = OpenAIServerBackend(spec, "served")
        generated = backend.generate(prompts, GenerationSettings())
        scored = backend.score_targets(requests)
        again = backend.generate(prompts, GenerationSettings())
        backend.close()
        closed = backend.score_targets(requests[:1])
    assert all(g.error is None for g in [*generated, *again])
    assert all(s.error is None and len(s.scores) == 2 for s in scored), [s.error for s in scored]
    assert closed[0].error is not None and "closed" in closed[0].error


def test_a_server_without_prompt_logprobs_is_asked_once_and_said_to_be_unable(tiny_model_dir: Path) -> None:
    from clue.backends.openai_server import OpenAIServerBackend
    from clue.models.matrix import ModelSpec
    from clue.types import ChatMessage, Prompt, TargetRequest
    from tests.helpers.openai_server import FakeOpenAIServer

    chat = (ChatMessage("user", "What should I do about knee pain?"),)
    requests = [TargetRequest(Prompt("t", f"s{i}", chat, 8), ("Knee pain advice please now",)) for i in range(4)]
    with FakeOpenAIServer() as server:  # no echo: /v1/completions answers 404
        spec = ModelSpec.of(
            "served", path="served", backend="openai", base_url=server.base_url, tokenizer=str(tiny_model_dir),
            prompt_logprobs=True,
        )  # fmt: skip
        got = OpenAIServerBackend(spec, "served").score_targets(requests)
        asked = len(server.state.requests)
    assert asked == 1
    assert all(g.error and "no prompt log-probabilities" in g.error for g in got[1:])
    no_tokenizer = ModelSpec.of(
        "served", path="served", backend="openai", base_url="http://127.0.0.1:9/v1", tokenizer="none",
        prompt_logprobs=True,
    )  # fmt: skip
    (scored,) = OpenAIServerBackend(no_tokenizer, "served").score_targets(requests[:1])
    assert scored.error is not None and 'tokenizer = "none"' in scored.error


# -- a run ------------------------------------------------------------------------------------------------------------
LIMIT = 12  # problem-summary samples: answers of several words, above the diagnostic's minimum of 10 items


def answer_pairs(count: int) -> list[tuple[str, str]]:
    """The `count` problem-summary samples a run with --clue-contamination-items `count` probes, as (user turn,
    reference answer): what a model trained on the probed test items has seen."""
    from clue.run.contamination.probes import probed_samples
    from clue.tasks import get_task

    task = get_task("problem_summary")
    probed = probed_samples(task, REPO / "fixtures/data/problem_summary/BioNLP2023-1A-Test.csv", count)
    return [(task.render_user(s), task.render_answer(s)) for s in probed]


@pytest.fixture(scope="module")
def memorised(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter of the embedded default's base (a tiny random Llama) trained 30 epochs on the test items it
    will be probed on: it has memorised them."""
    from clue.models import smollm2
    from clue.models.tiny import build_tiny_llama

    base = build_tiny_llama(tmp_path_factory.mktemp("tiny") / "base", seed=0)
    out = tmp_path_factory.mktemp("memorised") / "adapter"
    smollm2.train_lora(base, answer_pairs(LIMIT), out, epochs=30, seed=0, rank=8, lr=5e-3)
    return out


def run_default(p: pytest.Pytester, matrix: str, *options: str) -> pytest.RunResult:
    p.makepyfile(test_problem_summary=(REPO / "benchmarks/test_problem_summary.py").read_text())
    if not (p.path / "fixtures").exists():
        (p.path / "fixtures").symlink_to(REPO / "fixtures")
    (p.path / "matrix.toml").write_text(matrix)
    return p.runpytest_subprocess(
        "-W", "ignore::pytest.PytestAssertRewriteWarning", "-p", "no:cacheprovider", "--clue-data-dir",
        "fixtures/data", "--clue-reports-dir", "out", "--clue-cache-dir", str(p.path / "cache"), "--clue-limit",
        str(LIMIT), "--clue-contamination-items", str(LIMIT), "--clue-matrix", "matrix.toml", "--junitxml",
        "out/junit.xml", "--clue-bertscore-model", "tiny-bert", "--clue-umls-spacy-model", "ruler",
        "--clue-umls-linker", "fixtures/umls/kb.jsonl", *options,
    )  # fmt: skip


def matrix(base: Path, adapter: Path | None = None, *, baseline: str | None = None) -> str:
    text = "" if baseline else f'[models.base]\npath = "{base}"\n\n'
    link = f'baseline = "{baseline}"' if baseline else 'base = "base"'
    return text + f'[models.memorised]\npath = "{base}"\nadapter = "{adapter}"\n{link}\n'


def test_a_model_trained_on_the_test_items_is_flagged_reported_everywhere_and_failed_on_request(
    pytester: pytest.Pytester, memorised: Path
) -> None:
    from tests.helpers import junit_suite_properties

    base = Path(json.loads((memorised / "adapter_config.json").read_text())["base_model_name_or_path"])
    first = run_default(pytester, matrix(base, memorised), "--clue-save-baseline", "base.json")
    assert first.ret in (0, 1), first.stdout.str()[-3000:]
    record = json.loads((pytester.path / "out/results/problem_summary/memorised.json").read_text())
    found = record["contamination"]
    assert found["status"] == "flagged" and found["flagged"] is True and found["mode"] == "report", found
    assert found["ci_low"] > found["margin"] and found["memorised"]["of"] == LIMIT
    assert found["exact_gain"] > found["neighbour_gain"]
    first.stdout.fnmatch_lines(["*note: contamination flagged: d = *items look memorised*"])
    assert record["verdict"] != "regressed" or "contamination" not in (record.get("headline") or "")
    properties = junit_suite_properties(pytester.path / "out/junit.xml")
    assert properties["clue.problem_summary[memorised].contamination"] == "flagged"
    assert properties["clue.problem_summary[memorised].contamination.flagged"] == "true"
    html = (pytester.path / "out/index.html").read_text()
    assert 'id="contamination"' in html and ">flagged<" in html
    assert "contamination flagged" in (pytester.path / "out/summary.md").read_text()
    stats = json.loads((pytester.path / "out/clue-session.json").read_text())
    assert list(stats["contamination_task_s"]) == ["problem_summary"], stats  # the probes' cost, per task
    assert stats["contamination_task_s"]["problem_summary"] == pytest.approx(stats["contamination_s"])
    assert stats["contamination_s"] > 0
    first.stdout.fnmatch_lines(["*s in model backends (*s of it contamination probes: problem_summary *s)*"])

    # the stored baseline carries the base side: the same finding without the base model, nothing recomputed, at
    # another --clue-limit too (the probes once depended on it, and a baseline saved at 12 matched no probe at 5)
    again = run_default(pytester, matrix(base, memorised, baseline="base.json#base"), "--clue-limit", "5")
    stats = json.loads((pytester.path / "out/clue-session.json").read_text())
    assert stats["loads"] == {"memorised": 0}, stats  # its generations and probe scores came from the store
    stored = json.loads((pytester.path / "out/results/problem_summary/memorised-vs-base.json").read_text())
    assert stored["contamination"] == found, again.stdout.str()[-2000:]

    # on request, a flagged case fails; off, there is no diagnostic
    failed = run_default(pytester, matrix(base, memorised), "--clue-contamination", "fail")
    failed.stdout.fnmatch_lines(["*contamination flagged*(--clue-contamination fail: a flagged case fails)*"])
    assert failed.ret == 1
    off = run_default(pytester, matrix(base, memorised), "--clue-contamination", "off")
    assert (
        json.loads((pytester.path / "out/results/problem_summary/memorised.json").read_text())["contamination"] is None
    )
    assert "contamination" not in off.stdout.str()


CONDITIONS = (
    "community acquired pneumonia", "acute kidney injury", "type two diabetes mellitus", "atrial fibrillation",
    "chronic obstructive pulmonary disease exacerbation", "urinary tract infection", "hypertensive urgency",
    "alcohol withdrawal syndrome", "deep vein thrombosis", "anemia of chronic disease", "symptomatic hyponatremia",
    "cellulitis of the left leg", "sepsis from a urinary source", "new onset seizure",
)  # fmt: skip


def test_under_fail_a_case_passes_only_on_a_diagnostic_that_ran() -> None:
    """A clear finding passes; a flagged one fails; one the diagnostic could not judge although it applies (no
    scores, a stored baseline whose probes do not match, a reference comparison asked for and not made) fails under
    `fail` with the reason, instead of passing on a diagnostic that did not run; a task without neighbours (labels,
    letters) is not applicable and passes."""
    from clue.records import ContaminationRecord, Count
    from clue.run.evaluation import _contamination_failure

    numbers: dict[str, Any] = {
        "statistic": 0.1,
        "ci_low": 0.0,
        "ci_high": 0.2,
        "exact_gain": 0.1,
        "neighbour_gain": 0.0,
    }
    numbers |= {"memorised": Count(0, 12), "margin": 0.35, "item_threshold": 0.5, "neighbours": 4}
    clear = ContaminationRecord("clear", "fail", **numbers)
    assert _contamination_failure(None, clear) is None
    unmatched = ContaminationRecord("not available", "fail", reason="the base's scores match 3 of the model's 12")
    assert "contamination not judged: the base's scores match 3" in (_contamination_failure(None, unmatched) or "")
    no_reference = dataclasses.replace(
        clear, reference_reason="the stored baseline carries no scores of reference items"
    )
    failure = _contamination_failure("rougeL regressed", no_reference) or ""
    assert failure.startswith("rougeL regressed\n") and "no reference comparison: the stored baseline" in failure
    labels = ContaminationRecord("not applicable", "fail", reason="answers that are labels")
    assert _contamination_failure(None, labels) is None


REFERENCE_ITEMS = min(LIMIT, len(CONDITIONS))  # the run probes --clue-contamination-items of them


def reference_file(path: Path) -> Path:
    """14 Problem Summary items of the published CSV layout that no model here trained on (not the test file's)."""
    import csv

    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["File ID", "Subjectives", "Assessment", "Summary"])
        for i, condition in enumerate(CONDITIONS):
            other = CONDITIONS[(i + 5) % len(CONDITIONS)]
            writer.writerow([
                f"9{i:05d}.txt", f"S: Pt with history of {other} presents with {condition}.",
                f"Admitted for {condition}, also with {other}.", f"{condition}; {other};",
            ])  # fmt: skip
    return path


def test_reference_items_decide_the_flag_and_show_everywhere_and_a_bad_reference_is_a_usage_error(
    pytester: pytest.Pytester, memorised: Path
) -> None:
    """--clue-contamination-reference: the memorised model gains more on its test items than on items it never
    saw, and the comparison is in the results, JUnit, the HTML report and the terminal. The test file handed over
    as its own reference (no item left that is not a test item), a damaged file (once set aside with a note, so
    that the weaker statistic decided and a gate under `fail` passed), one that does not exist, or one with the
    diagnostic off (it would be ignored) is a usage error; a stored baseline saved without reference items gives the
    reason instead and leaves the neighbour statistic's flag (and fails under `fail`); one saved with them gives the
    same finding without the base model."""
    from tests.helpers import junit_suite_properties

    base = Path(json.loads((memorised / "adapter_config.json").read_text())["base_model_name_or_path"])
    reference = reference_file(pytester.path / "unseen.csv")
    first = run_default(
        pytester, matrix(base, memorised), "--clue-contamination-reference", f"problem_summary={reference}",
        "--clue-save-baseline", "base.json",
    )  # fmt: skip
    assert first.ret in (0, 1), first.stdout.str()[-3000:]
    live = json.loads((pytester.path / "out/results/problem_summary/memorised.json").read_text())["contamination"]
    found = live
    assert found["status"] == "flagged" and found["reference_items"] == REFERENCE_ITEMS, found
    assert found["reference_ci_low"] > 0 and found["statistic"] > found["reference_d"]
    assert found["reference_statistic"] == pytest.approx(found["statistic"] - found["reference_d"])
    first.stdout.fnmatch_lines([f"*contamination flagged: d on the test items minus d on {REFERENCE_ITEMS} unseen*"])
    properties = junit_suite_properties(pytester.path / "out/junit.xml")
    assert float(properties["clue.problem_summary[memorised].contamination.reference_ci_low"]) > 0
    html = (pytester.path / "out/index.html").read_text()
    assert "d test − d reference items" in html and f"({REFERENCE_ITEMS} items)" in html
    # Problem Summary is credentialed: no artefact (the baseline to be committed included) holds a reference item's
    # raw id or text
    artefacts = [p for p in (pytester.path / "out").rglob("*") if p.is_file()] + [pytester.path / "base.json"]
    texts = [a.read_text(encoding="utf-8", errors="replace") for a in artefacts]
    ids = [f"9{i:05d}.txt" for i in range(len(CONDITIONS))]
    assert not [i for i in ids for text in texts if names(text, i)]
    assert not [c for c in CONDITIONS for text in texts if c in text]

    test_file = "fixtures/data/problem_summary/BioNLP2023-1A-Test.csv"
    option = "--clue-contamination-reference"
    itself = run_default(pytester, matrix(base, memorised), option, f"problem_summary={test_file}")
    assert itself.ret == pytest.ExitCode.USAGE_ERROR, itself.stdout.str()[-2000:]
    assert "0 items that are not test items (needs 10; 24 of its 24 are the test file's" in itself.stderr.str()
    damaged = pytester.path / "damaged.csv"
    damaged.write_bytes(reference.read_bytes().replace(b"acute", b"ac\xffte", 1))
    for mode in ("fail", "report"):
        contamination = ("--clue-contamination", mode)
        refused = run_default(pytester, matrix(base, memorised), option, f"problem_summary={damaged}", *contamination)
        assert refused.ret == pytest.ExitCode.USAGE_ERROR, refused.stdout.str()[-2000:]
        assert f"{option} problem_summary={damaged}: " in refused.stderr.str()

    # a baseline saved with the reference items carries the base side of both comparisons; one saved without, none
    stored_base = matrix(base, memorised, baseline="base.json#base")
    stored = run_default(pytester, stored_base, option, f"problem_summary={reference}")
    record = json.loads((pytester.path / "out/results/problem_summary/memorised-vs-base.json").read_text())
    assert record["contamination"] == live, stored.stdout.str()[-2000:]
    assert json.loads((pytester.path / "out/clue-session.json").read_text())["loads"] == {"memorised": 0}
    run_default(pytester, matrix(base, memorised), "--clue-save-baseline", "without.json")
    run_default(pytester, matrix(base, memorised, baseline="without.json#base"), option, f"problem_summary={reference}")
    record = json.loads((pytester.path / "out/results/problem_summary/memorised-vs-base.json").read_text())
    assert record["contamination"]["reference_reason"].startswith(
        "the stored baseline carries no scores of reference items"
    )
    strict = run_default(
        pytester, matrix(base, memorised, baseline="without.json#base"), option, f"problem_summary={reference}",
        "--clue-contamination", "fail",
    )  # fmt: skip
    assert strict.ret == 1
    strict.stdout.fnmatch_lines(["*no reference comparison: the stored baseline carries*(--clue-contamination fail*"])

    typo = run_default(pytester, matrix(base, memorised), option, "problem_summary=nope.csv")
    assert typo.ret == pytest.ExitCode.USAGE_ERROR and f"{option}: no such file" in typo.stderr.str()
    off = ("--clue-contamination", "off")
    ignored = run_default(pytester, matrix(base, memorised), option, f"problem_summary={reference}", *off)
    assert ignored.ret == pytest.ExitCode.USAGE_ERROR and "with --clue-contamination off" in ignored.stderr.str()


@HOSTILE
@given(data=st.data(), how=st.sampled_from(["bytes", "csv"]), mode=st.sampled_from(["report", "fail"]))
def test_a_damaged_reference_file_is_a_usage_error_at_start_up(
    data: st.DataObject, how: str, mode: str, tmp_path: Path
) -> None:
    """Hypothesis' damage to a reference file the user named (bytes flipped, cut short, a record of another shape):
    the session does not start, with one ConfigError naming the option and the file, or the file still reads and
    holds at least 10 items that are not test items, which the diagnostic then uses. Nothing in between: a file set
    aside with a note let the weaker statistic decide, and a gate under `fail` passed."""
    from clue.config import DataOptions, GateOptions, Settings
    from clue.errors import ConfigError
    from clue.run.contamination.scores import MIN_ITEMS
    from clue.run.session import ClueSession

    clean = reference_file(tmp_path / "clean.csv")
    damaged = tmp_path / "unseen.csv"
    if how == "bytes":
        damaged.write_bytes(data.draw(bytes_mutation(clean.read_bytes())))
    else:
        damaged.write_text(data.draw(csv_mutation(clean.read_text(encoding="utf-8"))), encoding="utf-8")
    settings_ = Settings(
        REPO,
        data=DataOptions(data={"problem_summary": TEST_FILE}),
        gate=GateOptions(contamination=mode, contamination_reference={"problem_summary": damaged}),
    )
    try:
        session = ClueSession(settings_)
    except ConfigError as exc:
        assert str(exc).startswith(f"--clue-contamination-reference problem_summary={damaged}: "), str(exc)
        return
    task = session.catalog.task("problem_summary")
    task_data = session.catalog.data(task)
    assert task_data is not None
    items = session.catalog.reference_items(task, task_data)
    assert items is not None and len(items.samples) >= MIN_ITEMS
