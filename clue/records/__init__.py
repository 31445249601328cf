"""The records that leave a run: typed and frozen, each with `to_json` (what the file or the xdist report carries) and
`from_json` (what every reader parses, refusing a malformed record by name). The results JSON of one case
(`CaseRecord`, with its `MetricEntry`s and `SampleRow`s: `case`), its contamination finding (`contamination`), a
selected case without a result (`NotRun`), the row the summary, JUnit, the annotations and the
`pytest_clue_case_result` hook get (`CaseRow`) and the run's statistics and merged results (`run`), a case's
comparison across instruction wordings (`phrasings`), and a stored baseline's entry (`BaselineEntry`: `baseline`);
the field readers they share are in `reading`. The JSON shapes are those of schema version SCHEMA_VERSION
(docs/ci.md)."""

from clue.records.baseline import BaselineEntry, BaselinePhrasing, BaselineProbes, BaselineSample
from clue.records.case import CaseRecord, MetricEntry, SampleRow
from clue.records.contamination import UNREFERENCED_FLAG, ContaminationRecord, ContaminationStatus
from clue.records.phrasings import PhrasingsSummary, WordingEntry
from clue.records.reading import (
    JSON,
    SCHEMA_VERSION,
    VERDICTS,
    CaseVerdict,
    Count,
    RecordError,
    comparison_from_json,
    name_in_message,
    stop_from_json,
)
from clue.records.run import CaseRow, MetricRow, NotRun, RunRecord, RunStats

__all__ = [
    "JSON",
    "SCHEMA_VERSION",
    "UNREFERENCED_FLAG",
    "VERDICTS",
    "BaselineEntry",
    "BaselinePhrasing",
    "BaselineProbes",
    "BaselineSample",
    "CaseRecord",
    "CaseRow",
    "CaseVerdict",
    "ContaminationRecord",
    "ContaminationStatus",
    "Count",
    "MetricEntry",
    "MetricRow",
    "NotRun",
    "PhrasingsSummary",
    "RecordError",
    "RunRecord",
    "RunStats",
    "SampleRow",
    "WordingEntry",
    "comparison_from_json",
    "name_in_message",
    "stop_from_json",
]
