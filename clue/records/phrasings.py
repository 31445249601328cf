"""A case's comparison across instruction wordings (--clue-phrasings N): one `WordingEntry` per wording and one for
the per-sample mean over them (`combined`), and the `PhrasingsSummary` beside them: the family's verdict (the case's),
the reference wording's own verdict, and each model's sensitivity to the wording."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

from clue.errors import describe
from clue.records.reading import JSON, VERDICTS, RecordError, _get, _listed, comparison_from_json
from clue.statistics.paired import Comparison, Verdict

FINDINGS = ("more sensitive", "less sensitive", "no difference shown")


@dataclass(frozen=True)
class WordingEntry:
    """One wording's paired comparison of the primary metric (`wording` "combined": the per-sample mean over the
    wordings). `digest` is the hash of the wording's text (None for combined); `source` where it comes from."""

    wording: str
    digest: str | None
    source: str
    comparison: Comparison

    def to_json(self) -> dict[str, JSON]:
        c = self.comparison
        return {
            "wording": self.wording,
            "digest": self.digest,
            "source": self.source,
            "n": c.n,
            "metric": c.metric,
            "model": c.model_mean,
            "base": c.base_mean,
            "delta": c.delta,
            "ci_low": c.ci_low,
            "ci_high": c.ci_high,
            "verdict": c.verdict,
            "comparison": c.as_dict(),
        }

    @classmethod
    def from_json(cls, data: JSON, where: str) -> WordingEntry:
        wording = _get(data, "wording", str, where)
        here = f"{where} ({wording})"
        comparison = comparison_from_json(_get(data, "comparison", dict, here), f"{here}, comparison")
        assert comparison is not None  # a dict, read or refused
        return cls(wording, _get(data, "digest", str, here, optional=True), _get(data, "source", str, here), comparison)


@dataclass(frozen=True)
class PhrasingsSummary:
    """The family's verdict, the reference wording's verdict alone, and the spread of the primary metric's mean over
    the wordings for each model with the candidate-minus-base difference's interval and finding."""

    metric: str
    verdict: Verdict
    reference_verdict: Verdict
    model_spread: float
    base_spread: float
    spread_ci_low: float
    spread_ci_high: float
    finding: str

    def to_json(self) -> dict[str, JSON]:
        return {
            "metric": self.metric,
            "verdict": self.verdict,
            "reference_verdict": self.reference_verdict,
            "sensitivity": {
                "model_spread": self.model_spread,
                "base_spread": self.base_spread,
                "delta": self.model_spread - self.base_spread,
                "ci_low": self.spread_ci_low,
                "ci_high": self.spread_ci_high,
                "finding": self.finding,
            },
        }

    @classmethod
    def from_json(cls, data: JSON, where: str) -> PhrasingsSummary:
        for key in ("verdict", "reference_verdict"):
            value = data.get(key) if isinstance(data, Mapping) else None
            if value not in VERDICTS:
                raise RecordError(f"{where}: {key} is {describe(value)}, not one of {_listed(VERDICTS)}")
        sense = _get(data, "sensitivity", dict, where)
        here = f"{where}, sensitivity"
        finding = _get(sense, "finding", str, here)
        if finding not in FINDINGS:
            raise RecordError(f"{here}: finding is {describe(finding)}, not one of {_listed(FINDINGS)}")
        return cls(
            _get(data, "metric", str, where),
            cast(Verdict, data["verdict"]),
            cast(Verdict, data["reference_verdict"]),
            _get(sense, "model_spread", float, here),
            _get(sense, "base_spread", float, here),
            _get(sense, "ci_low", float, here),
            _get(sense, "ci_high", float, here),
            finding,
        )
