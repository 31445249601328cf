"""The contamination diagnostic's record in a case's results JSON."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast, get_args

from clue.errors import describe
from clue.records.reading import JSON, Count, RecordError, _get, _listed

ContaminationStatus = Literal["clear", "flagged", "not available", "not applicable"]


_CONTAMINATION_NUMBERS = (
    "statistic",
    "ci_low",
    "ci_high",
    "exact_gain",
    "neighbour_gain",
    "margin",
    "item_threshold",
    "reference_statistic",
    "reference_ci_low",
    "reference_ci_high",
    "reference_d",
)


# what a flag without reference items cannot tell apart (docs/contamination.md, the validation)
UNREFERENCED_FLAG = (
    "without reference items a heavy fine-tune on text of this kind is flagged too: "
    "compare with unseen items (--clue-contamination-reference) before calling it contamination"
)


@dataclass(frozen=True)
class ContaminationRecord:
    """The contamination diagnostic of a gated case (clue/statistics/contamination.py): whether the model's gain
    over its reference looks like memorised test items. `mode` "report" never changes the verdict; "fail" fails a
    flagged case. Numbers are nats per token; `memorised`: items whose own statistic exceeds `item_threshold`.
    With --clue-contamination-reference: `reference_statistic` is d on the test items (`statistic`) minus d on
    `reference_items` unseen items (`reference_d`), which then decides the flag (lower end above 0); or
    `reference_reason` says why there is no comparison (the neighbour statistic's flag stands)."""

    status: ContaminationStatus
    mode: str
    reason: str | None = None
    statistic: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    exact_gain: float | None = None
    neighbour_gain: float | None = None
    memorised: Count | None = None
    margin: float | None = None
    item_threshold: float | None = None
    neighbours: int | None = None
    reference_statistic: float | None = None
    reference_ci_low: float | None = None
    reference_ci_high: float | None = None
    reference_d: float | None = None
    reference_items: int | None = None
    reference_reason: str | None = None

    @property
    def flagged(self) -> bool:
        return self.status == "flagged"

    @property
    def undecided(self) -> str | None:
        """Why the diagnostic could not judge the case although it applies (its scores or its base's are missing,
        or the reference comparison the user asked for could not be made), or None: under `fail` such a case cannot
        pass. A task whose answers have no neighbours (labels, letters) is not applicable, not undecided."""
        if self.status == "not available":
            return self.reason or "the diagnostic did not run"
        if self.reference_reason is not None:
            return f"no reference comparison: {self.reference_reason}"
        return None

    @property
    def summary(self) -> str:
        """One line: the terminal's, the report's note, the JUnit property's. With a reference comparison it comes
        first (it decides the flag), the neighbour statistic after it."""
        if self.statistic is None or self.memorised is None:
            return f"contamination {self.status}: {self.reason}"
        share = self.memorised.n / self.memorised.of
        neighbours = (
            f"d = {self.statistic:+.3f} nats/token [{self.ci_low:+.3f}, {self.ci_high:+.3f}]"
            f"{'' if self.reference_statistic is not None else f' (flagged above {self.margin:g})'}; "
            f"{self.memorised.n} of {self.memorised.of} items look memorised ({share:.0%})"
        )
        if self.reference_statistic is not None:
            return (
                f"contamination {self.status}: d on the test items minus d on {self.reference_items} unseen "
                f"reference items = {self.reference_statistic:+.3f} [{self.reference_ci_low:+.3f}, "
                f"{self.reference_ci_high:+.3f}] (flagged above 0); against neighbours alone {neighbours}"
            )
        unmatched = f"; no reference comparison: {self.reference_reason}" if self.reference_reason else ""
        caveat = f"; {UNREFERENCED_FLAG}" if self.flagged else ""
        return f"contamination {self.status}: {neighbours}{unmatched}{caveat}"

    def to_json(self) -> dict[str, JSON]:
        out: dict[str, JSON] = {"status": self.status, "flagged": self.flagged, "mode": self.mode}
        if self.reason is not None:
            out["reason"] = self.reason
        out.update({k: getattr(self, k) for k in _CONTAMINATION_NUMBERS if getattr(self, k) is not None})
        if self.memorised is not None:
            out["memorised"] = self.memorised.to_json()
        if self.neighbours is not None:
            out["neighbours"] = self.neighbours
        if self.reference_items is not None:
            out["reference_items"] = self.reference_items
        if self.reference_reason is not None:
            out["reference_reason"] = self.reference_reason
        return out

    @classmethod
    def from_json(cls, data: JSON, where: str) -> ContaminationRecord | None:
        if data is None:
            return None
        status = _get(data, "status", str, where)
        if status not in get_args(ContaminationStatus):
            raise RecordError(
                f"{where}: status is {describe(status)}, not one of {_listed(get_args(ContaminationStatus))}"
            )
        numbers = {k: _get(data, k, float, where, optional=True) for k in _CONTAMINATION_NUMBERS}
        return cls(
            status=cast(ContaminationStatus, status),
            mode=_get(data, "mode", str, where),
            reason=_get(data, "reason", str, where, optional=True),
            memorised=Count.from_json(data.get("memorised"), f"{where}, memorised"),
            neighbours=_get(data, "neighbours", int, where, optional=True),
            reference_items=_get(data, "reference_items", int, where, optional=True),
            reference_reason=_get(data, "reference_reason", str, where, optional=True),
            **numbers,
        )
