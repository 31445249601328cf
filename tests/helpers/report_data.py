"""Recorded results for the report tests, produced through the real code path (scoring, gate, results records)
from scripted per-sample outputs: MedNLI regressed, MeDiSumCode improved, MeQSum inconclusive."""

from __future__ import annotations

import random
from typing import Any

from clue.baseline import Reference
from clue.config import GateOptions, Settings
from clue.metrics.bertscore import BertScoreConfig
from clue.metrics.scorers import Scorers
from clue.models.tiny import bertscore_stand_in
from clue.records import RunRecord
from clue.report.model import Report, build_report
from clue.run.case_record import result_record
from clue.run.gate import Worded, run_gate
from clue.tasks import get_task
from clue.tasks.wordings import task_wordings
from clue.types import Generation, Sample, TaskResult
from tests.helpers import FIXTURE_DATA, REPO


def settings() -> Settings:
    """The default settings with a margin of 0.02 on every metric and 2,000 resamples (quick)."""
    return Settings(REPO, gate=GateOptions(margin=0.02, resamples=2000))


def _result(task_name: str, model: str, samples: list[Sample], texts: list[str], scorers: Scorers) -> TaskResult:
    task = get_task(task_name)
    gens = tuple(
        Generation(s.id, t, 10, len(t.split()), "stop" if t else "length", 0.1)
        for s, t in zip(samples, texts, strict=True)
    )
    scores = tuple(task.score_all(samples, gens, scorers))
    return TaskResult(task_name, model, task.metrics(scorers), scores, gens, {"decoding": "greedy"}, {"clue": "test"})


def recorded_results(show_samples: bool = False) -> list[dict[str, Any]]:
    cache = REPO / ".clue-cache"
    scorers = Scorers(
        bertscore_config=BertScoreConfig("tiny-bert"),
        umls_config=None,
        cache_dir=cache,
        bertscore_build=bertscore_stand_in("tiny-bert", cache),
    )
    records = []
    rng = random.Random(3)

    def pair(
        task_name: str, samples: list[Sample], base_texts: list[str], cand_texts: list[str], worded: bool = False
    ) -> None:
        base = _result(task_name, "base", samples, base_texts, scorers)
        cand = _result(task_name, "candidate", samples, cand_texts, scorers)
        # MedNLI's case also under one alternative wording (--clue-phrasings 2), where the candidate answers like
        # its base: the records carry `phrasings` for every reader
        other = task_wordings(get_task(task_name))[1]
        like_base = _result(task_name, "candidate", samples, base_texts, scorers)
        alternatives = [Worded(other, like_base, Reference.from_result(base))] if worded else []
        outcome = run_gate(cand, Reference.from_result(base), settings(), worded=alternatives)
        for result, out in ((base, None), (cand, outcome)):
            records.append(
                result_record(
                    result, out, samples=samples, show_samples=show_samples, alpha=0.025, resamples=2000, seed=1
                ).to_json()
            )

    nli = get_task("mednli")
    _, scored = nli.split(nli.load(FIXTURE_DATA / "mednli/mli_test_v1.jsonl"), 1)
    labels = ["ENTAILMENT", "NEUTRAL", "CONTRADICTION"]

    def wrong(s: Sample) -> str:
        return labels[(labels.index(str(s.reference)) + 1) % 3]

    pair(
        "mednli",
        scored,
        [s.reference for s in scored],
        [wrong(s) if i < 18 else s.reference for i, s in enumerate(scored)],
        worded=True,
    )

    code = get_task("medisumcode")
    _, scored = code.split(code.load(FIXTURE_DATA / "medisumcode/MeDiSumCode.json"), 1)
    pair(
        "medisumcode",
        scored,
        ["ICD-10 Codes: " + ", ".join(list(s.reference)[:1]) + ", Q99.99" for s in scored],
        ["ICD-10 Codes: " + ", ".join(s.reference) for s in scored],
    )

    qs = [Sample(f"q{i}", {"CHQ": f"question {i}"}, f"What is the dose of drug {i} for asthma?", "") for i in range(30)]
    pair(
        "meqsum",
        qs,
        [s.reference for s in qs],
        [s.reference if rng.random() < 0.93 else "drug drug drug drug drug drug drug drug drug drug" for s in qs],
    )
    return records


def run_of(
    records: list[dict[str, Any]], not_run: list[dict[str, str]] | None = None, strict: bool = False
) -> RunRecord:
    """The run record a clue-results.json holding `records` parses to (the path every report reader takes)."""
    data = {"schema": 1, "results": records, "not_run": not_run or [], "strict": strict}
    return RunRecord.from_json(data, "test results")


def report_of(
    records: list[dict[str, Any]],
    *,
    not_run: list[dict[str, str]] | None = None,
    strict: bool = False,
    flip_limit: int = 20,
) -> Report:
    return build_report(run_of(records, not_run, strict), flip_limit=flip_limit)


if __name__ == "__main__":  # regenerate a results file by hand: python -m tests.helpers.report_data
    import json

    (REPO / "reports").mkdir(exist_ok=True)
    (REPO / "reports/clue-results.json").write_text(json.dumps({"schema": 1, "results": recorded_results()}))
