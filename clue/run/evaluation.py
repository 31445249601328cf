"""The evaluation core: for a case (a model and what it is compared with) and its model's result on a task, gate
and build the results record. The pytest plugin and `clue.evaluate()` (clue/api.py) both call it, so a notebook
gets the numbers `pytest benchmarks` gets."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from clue.baseline import Reference
from clue.errors import ClueError
from clue.models.matrix import ModelSpec
from clue.records import CaseRecord, CaseVerdict, ContaminationRecord
from clue.run import case_record
from clue.run.contamination.case import contamination_record
from clue.run.gate import GateOutcome, Worded, run_gate
from clue.run.session import ClueSession
from clue.types import TaskResult


@dataclass(frozen=True)
class CaseResult:
    """One finished case: its results record (the results JSON), the gate's outcome (None for a reference model),
    and how a test of it ends: `failure` (regressed, outputs identical to the base, inconclusive under strict) or
    `warning` (inconclusive), both None when it passes."""

    case: str
    task: str
    model: str
    record: CaseRecord
    outcome: GateOutcome | None
    failure: str | None = None
    warning: str | None = None

    @property
    def verdict(self) -> CaseVerdict:
        return self.record.verdict


def evaluate_case(
    session: ClueSession,
    case_id: str,
    case: ModelSpec,
    result: TaskResult,
    headline: Callable[[GateOutcome, str], str] | None = None,
) -> CaseResult:
    """Gate `result` (the case's model on one task) against the case's base model or stored baseline. Raises
    ClueError when no comparison can be made (the base failed, a baseline measured something else). `headline`
    may restyle the first line of a failure (the pytest_clue_headline hook)."""
    settings, task, generator = session.settings, session.catalog.task(result.task), session.generator
    mine = generator.generated(case.name, result.task)  # what generating the case's model produced
    stop = mine.stops.get(case.case)
    if stop is not None:  # the sequential gate stopped here: the samples it used, at its look's level
        result = _first(result, stop.samples)
    outcome, reference, base = None, None, None
    try:
        if case.base:
            base = generator.generated(case.base, result.task)
        reference = session.references.reference(
            case, result, generator.result(case.base, result.task) if case.base else None
        )
        if reference is not None:
            worded = _worded(session, case, result)
            outcome = run_gate(result, reference, settings, stop.level if stop else None, task, worded)
    except ClueError as exc:
        prefix = f"base model {case.base!r}: " if case.base else ""
        raise ClueError(prefix + str(exc)) from None
    data = session.catalog.data(task)
    assert data is not None  # the result exists, so the data did
    state, same = session.references.weights_check(case, reference, mine.probe, base.probe if base else None)
    failure, warning, first = _verdict(outcome, headline, settings.gate.strict, same)
    contamination = (
        contamination_record(settings, case, result.task, reference, mine, base) if reference is not None else None
    )
    if contamination is not None and contamination.mode == "fail":
        failure = _contamination_failure(failure, contamination)
    record = case_record.result_record(
        result,
        outcome,
        samples=data.scored[: result.n],
        sequential=stop,
        show_samples=settings.outputs.report_samples,
        alpha=settings.gate.alpha,
        resamples=settings.gate.resamples,
        seed=settings.gate.bootstrap_seed,
        case=case_id,
        weights_check=None if outcome is None else state,
        headline=first,
        task=task,
        contamination=contamination,
    )
    return CaseResult(case_id, result.task, result.model, record, outcome, failure, warning)


def _worded(session: ClueSession, case: ModelSpec, result: TaskResult) -> list[Worded]:
    """Under --clue-phrasings N: the case's model and its reference under each alternative wording, on the samples
    `result` holds (a sequential case's up to its stop)."""
    generator = session.generator
    if not generator.phrasings.active:
        return []
    wordings = generator.phrasings.alternatives(session.catalog.task(result.task))
    ids = [s.sample_id for s in result.samples]
    mine = generator.worded_results(case.name, result.task)
    if case.base:
        theirs = generator.worded_results(case.base, result.task)
        bases = [Reference.from_result(theirs[w.id]).restrict(ids) for w in wordings]
    else:
        bases = session.references.worded(case, result, wordings)
    return [Worded(w, _first(mine[w.id], len(ids)), base) for w, base in zip(wordings, bases, strict=True)]


def _first(result: TaskResult, n: int) -> TaskResult:
    return replace(result, samples=result.samples[:n], generations=result.generations[:n])


def _contamination_failure(failure: str | None, contamination: ContaminationRecord) -> str | None:
    """Under --clue-contamination fail: a flagged case fails, and so does one the diagnostic could not judge (a
    gate that passes on a diagnostic that did not run is the accident the mode exists to prevent)."""
    if contamination.flagged:
        why = f"{contamination.summary} (--clue-contamination fail: a flagged case fails)"
    elif contamination.undecided is not None:
        why = (
            f"contamination not judged: {contamination.undecided} (--clue-contamination fail: a case passes only on "
            "a diagnostic that ran; use report to see the verdict without it)"
        )
    else:
        return failure
    return (failure + "\n" if failure else "") + why


def _verdict(
    outcome: GateOutcome | None,
    headline: Callable[[GateOutcome, str], str] | None,
    strict: bool,
    same_weights: str | None,
) -> tuple[str | None, str | None, str | None]:
    """How the case's test ends: (failure, warning, headline), the messages starting with the one-line headline.
    A case whose weights are its reference's fails whatever its verdict."""
    if outcome is None:
        return None, None, None
    if same_weights is not None:
        first = outcome.headline("weights not applied")
        return f"{first}\n  {same_weights}", None, first
    first = outcome.headline()
    first = headline(outcome, first) if headline is not None else first
    text = first + "\n" + outcome.message().partition("\n")[2]
    if outcome.verdict == "regressed":
        return text, None, first
    if outcome.verdict == "inconclusive":
        if strict:
            return text + "\n(--clue-strict: inconclusive comparisons fail)", None, first
        return None, text, first
    return None, None, first
