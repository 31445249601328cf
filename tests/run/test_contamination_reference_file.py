"""A --clue-contamination-reference file under hypothesis' mutations: read or refused by name."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import REPO
from tests.helpers.hostile import csv_mutation
from tests.helpers.hostile_files import FILES, HOSTILE, refused_or_read


@HOSTILE
@given(data=st.data())
def test_a_contamination_reference_file_is_read_or_refused_by_name(data: st.DataObject, tmp_path: Path) -> None:
    """--clue-contamination-reference reads a file in the task's own format: a mutated one gives its items that
    are not test items, or a DataError naming the file that echoes nothing planted (the diagnostic's reason,
    written into the results)."""
    from clue.config import DataOptions, GateOptions, Settings
    from clue.run.catalog import DataCatalog

    reference = tmp_path / "unseen.csv"
    rows = list(csv.reader(io.StringIO(FILES["problem_summary"].read_text())))
    rows[1:] = [[f"9{r[0]}", *r[1:-1], f"{r[-1]} stable"] for r in rows[1:11]] + rows[11:]  # 10 unseen, the rest not
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    reference.write_text(data.draw(csv_mutation(text.getvalue())), encoding="utf-8")
    settings = Settings(
        REPO,
        data=DataOptions(data={"problem_summary": FILES["problem_summary"]}),
        gate=GateOptions(contamination_reference={"problem_summary": reference}),
    )
    catalog = DataCatalog(settings)
    task = catalog.task("problem_summary")
    test_data = catalog.data(task)
    assert test_data is not None
    items = refused_or_read(lambda _: catalog.reference_items(task, test_data), reference)
    if items is not None:
        answers = {task.render_answer(s) for s in (*test_data.shots, *test_data.scored)}
        assert not {s.id for s in items.samples} & test_data.sample_ids
        assert not {task.render_answer(s) for s in items.samples} & answers
