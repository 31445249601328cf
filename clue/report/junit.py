"""JUnit XML that strict consumers accept: pytest's junit-10.xsd (tests/helpers/junit-10.xsd) allows no `<properties>`
inside a `<testcase>` and, of a testcase's attributes, only name, classname, time and group.

So clue's metrics go to the test suite's `<properties>`, one property per value, named after the case as its test
id reads: `clue.mednli[candidate].accuracy.delta`, `clue.mednli[candidate].verdict` (docs/ci.md lists them).
After pytest has written the file, `conform` moves any property a test recorded itself to the suite, prefixed with
the test's name, and drops the attributes xunit1 adds (file, line, url), which the schema does not know; the
module path stays in classname.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from clue.records import CaseRecord, CaseRow
from clue.util.files import SHARED, atomic_write

TESTCASE_ATTRIBUTES = frozenset({"name", "classname", "time", "group"})


def case_properties(row: CaseRow) -> list[tuple[str, str]]:
    """A finished case's suite-level properties (name, value), values as text with significant digits (a p-value
    of 1.7e-09 must not read 0.0)."""
    record = row.record
    prefix = f"clue.{row.task}[{row.case}]"
    out = [
        (f"{prefix}.model", record.model),
        (f"{prefix}.base", record.base_model or ""),
        (f"{prefix}.base_kind", record.base_kind or ""),
        (f"{prefix}.verdict", record.verdict),
        (f"{prefix}.n", str(record.n)),
        (f"{prefix}.results_json", row.results_json),
    ]
    if record.headline:
        out.append((f"{prefix}.headline", record.headline))
    for key, value in (record.sequential.as_dict() if record.sequential else {}).items():
        shown = str(value) if value is None or isinstance(value, str) else f"{value:.6g}"
        out.append((f"{prefix}.sequential.{key}", shown))
    identical = record.identical_outputs
    if identical is not None:
        out.append((f"{prefix}.identical_outputs", f"{identical.n}/{identical.of}"))
    if record.contamination is not None:
        for key, value in record.contamination.to_json().items():
            name = f"{prefix}.contamination" if key == "status" else f"{prefix}.contamination.{key}"
            if isinstance(value, dict):
                value = f"{value['n']}/{value['of']}"
            shown = str(value).lower() if isinstance(value, bool) else value
            out.append((name, shown if isinstance(shown, str) else f"{shown:.6g}"))
    out += _phrasing_properties(prefix, record)
    for metric, values in row.metrics.items():
        for key, value in values.to_json().items():
            name = f"{prefix}.{metric}" if key == "value" else f"{prefix}.{metric}.{key}"
            out.append((name, value if isinstance(value, str) else f"{value:.6g}"))
    return out


def _phrasing_properties(prefix: str, record: CaseRecord) -> list[tuple[str, str]]:
    """Under --clue-phrasings: the verdict across wordings, the reference wording's alone, the sensitivity, and
    each wording's difference, interval, verdict and text hash."""
    summary = record.phrasings_summary
    if summary is None:
        return []
    here = f"{prefix}.phrasings"
    out: list[tuple[str, str]] = [
        (f"{here}.verdict", summary.verdict),
        (f"{here}.reference_verdict", summary.reference_verdict),
        (f"{here}.sensitivity.finding", summary.finding),
    ]
    numbers = {
        "sensitivity.model_spread": summary.model_spread,
        "sensitivity.base_spread": summary.base_spread,
        "sensitivity.ci_low": summary.spread_ci_low,
        "sensitivity.ci_high": summary.spread_ci_high,
    }
    for entry in record.phrasings:
        c, key = entry.comparison, entry.wording
        out += [(f"{here}.{key}.verdict", c.verdict), (f"{here}.{key}.digest", entry.digest or "")]
        numbers.update({f"{key}.delta": c.delta, f"{key}.ci_low": c.ci_low, f"{key}.ci_high": c.ci_high})
        numbers.update({f"{key}.model": c.model_mean, f"{key}.base": c.base_mean, f"{key}.n": c.n})
    return out + [(f"{here}.{key}", f"{value:.6g}") for key, value in numbers.items()]


def add_case_properties(config: pytest.Config, row: CaseRow) -> None:
    """Hand a case's properties to pytest's JUnit writer (on the xdist controller: it alone writes the file)."""
    from _pytest.junitxml import xml_key

    xml = config.stash.get(xml_key, None)
    if xml is None:
        return
    for name, value in case_properties(row):
        xml.add_global_property(name, value)


_VERDICT_LINE = re.compile(r"Failed: ((?:REGRESSED|INCONCLUSIVE|IDENTICAL OUTPUTS) )")


def conform(path: Path) -> None:
    """Rewrite pytest's JUnit file in junit-10.xsd's shape (see the module docstring), and let a clue failure's
    message start with its verdict line rather than pytest's "Failed: "."""
    tree = ET.parse(path)
    changed = False
    for suite in tree.getroot().iter("testsuite"):
        moved: list[ET.Element] = []
        for case in suite.findall("testcase"):
            for failure in case.findall("failure"):
                message = failure.get("message", "")
                if _VERDICT_LINE.match(message):
                    failure.set("message", message.removeprefix("Failed: "))
                    changed = True
            for key in [k for k in case.attrib if k not in TESTCASE_ATTRIBUTES]:
                del case.attrib[key]
                changed = True
            for properties in case.findall("properties"):
                for prop in properties.findall("property"):
                    name = f"{case.get('classname')}.{case.get('name')}.{prop.get('name')}"
                    moved.append(ET.Element("property", name=name, value=prop.get("value", "")))
                case.remove(properties)
                changed = True
        if moved:
            target = suite.find("properties")
            if target is None:
                target = ET.Element("properties")
                suite.insert(0, target)
            target.extend(moved)
    if changed:
        payload = ET.tostring(tree.getroot(), encoding="unicode")
        atomic_write(path, ('<?xml version="1.0" encoding="utf-8"?>' + payload).encode(), SHARED)
