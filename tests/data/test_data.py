"""`clue data`: the MeDiSumCode and MeDiSumQA builders on synthetic MIMIC-shaped CSVs (made-up text, the real
column layout of MIMIC-IV-Note discharge.csv and MIMIC-IV hosp/diagnoses_icd.csv), and the data checker."""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from clue.cli import main
from clue.data import medisumcode, medisumqa
from clue.data.check import DATASETS, check
from clue.data.mimic import DIAGNOSES_COLUMNS, NOTE_COLUMNS
from clue.errors import ConfigError, DataError
from clue.tasks import get_task
from tests.helpers import FIXTURE_DATA, REPO

N_NOTES = 30
# Z66 and B20 are categories that form a block of their own (they must be kept as valid)
VALID = ["I10", "E119", "E785", "N179", "Z66", "J189", "I5022", "K219", "B20", "F329"]


def note_text(i: int) -> str:
    return (
        f" \nName:  ___   Unit No:   ___\n \nChief Complaint:\nfinding {i}\n \nBrief Hospital Course:\n"
        f"Patient {i} was treated for condition {i} with medication {i}.\n \n"
        f"Discharge Instructions:\nDear Mr. ___,\nYou were admitted for condition {i}. Take medication {i} daily.\n"
        f" \nFollowup Instructions:\n___\n"
    )


def write_csv(path: Path, columns: tuple[str, ...], rows: list[dict[str, object]]) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    data = buffer.getvalue().encode()
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


@pytest.fixture
def mimic(tmp_path: Path) -> tuple[Path, Path]:
    notes = [
        {
            "note_id": f"{1000 + i}-DS-1",
            "subject_id": 1000 + i,
            "hadm_id": 2000 + i,
            "note_type": "DS",
            "note_seq": 1,
            "charttime": "2150-01-01 00:00:00",
            "storetime": "",
            "text": note_text(i),
        }
        for i in range(N_NOTES)
    ]
    diagnoses: list[dict[str, object]] = []
    for i in range(N_NOTES):
        if i % 5 == 4:
            continue  # no diagnosis rows at all
        if i % 7 == 3:  # ICD-9 only
            diagnoses.append(
                {"subject_id": 1000 + i, "hadm_id": 2000 + i, "seq_num": 1, "icd_code": "4019", "icd_version": 9}
            )
            continue
        codes = [VALID[(i + k) % len(VALID)] for k in range(3)]
        for seq, code in reversed(list(enumerate(codes, start=1))):  # file order differs from seq_num order
            diagnoses.append(
                {"subject_id": 1000 + i, "hadm_id": 2000 + i, "seq_num": seq, "icd_code": code, "icd_version": 10}
            )
        diagnoses.append(
            {"subject_id": 1000 + i, "hadm_id": 2000 + i, "seq_num": 9, "icd_code": "Z9999", "icd_version": 10}
        )  # not an ICD-10-CM code
    return (
        write_csv(tmp_path / "discharge.csv.gz", NOTE_COLUMNS, notes),
        write_csv(tmp_path / "diagnoses_icd.csv", DIAGNOSES_COLUMNS, diagnoses),
    )


def expected_selection(size: int, seed: int) -> list[int]:
    with_codes = [i for i in range(N_NOTES) if i % 5 != 4 and i % 7 != 3]
    random.Random(seed).shuffle(with_codes)
    return with_codes[:size]


def test_medisumcode_build_matches_the_published_format_and_the_sampling(
    mimic: tuple[Path, Path], tmp_path: Path
) -> None:
    notes, diagnoses = mimic
    out = tmp_path / "data" / "medisumcode" / "MeDiSumCode.json"
    report = medisumcode.build(notes, diagnoses, out, size=10, seed=44)
    samples = get_task("medisumcode").load(out)  # the task's own loader accepts it
    chosen = expected_selection(10, 44)
    assert [s.id for s in samples] == [str(2000 + i) for i in chosen]
    first = json.loads(out.read_text())[0]
    i = chosen[0]
    assert first["text"] == note_text(i)
    assert [c["code"] for c in first["icd_codes"]] == [VALID[(i + k) % len(VALID)] for k in range(3)]  # seq order
    assert all(c["description"] for c in first["icd_codes"])
    skipped = [i for i in range(N_NOTES) if i % 5 == 4 or i % 7 == 3]
    assert report.notes == N_NOTES and report.notes_without_codes == len(skipped)
    assert report.icd9_rows_skipped == 1 * sum(1 for i in range(N_NOTES) if i % 5 != 4 and i % 7 == 3)
    assert report.invalid_codes_dropped == N_NOTES - len(skipped)
    again = tmp_path / "again.json"
    medisumcode.build(notes, diagnoses, again, size=10, seed=44)
    assert again.read_bytes() == out.read_bytes()
    other = tmp_path / "other.json"
    medisumcode.build(notes, diagnoses, other, size=10, seed=45)
    assert other.read_bytes() != out.read_bytes()


def test_medisumcode_build_warns_when_fewer_notes_than_asked(mimic: tuple[Path, Path], tmp_path: Path) -> None:
    report = medisumcode.build(*mimic, tmp_path / "x.json", size=500)
    assert report.written == len(expected_selection(500, 44))
    assert "fewer than the 500 asked for" in " ".join(report.warnings)


def test_bad_mimic_files_name_file_line_and_column(mimic: tuple[Path, Path], tmp_path: Path) -> None:
    notes, diagnoses = mimic
    broken = write_csv(
        tmp_path / "d.csv",
        DIAGNOSES_COLUMNS,
        [{"subject_id": 1, "hadm_id": 2, "seq_num": 1, "icd_code": "I10", "icd_version": "X"}],
    )
    with pytest.raises(DataError, match=r"d\.csv, record line 2, field 'icd_version': icd_version must be 9 or 10"):
        medisumcode.build(notes, broken, tmp_path / "x.json")
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match=r"wrong\.csv, record line 1: missing column\(s\) note_id"):
        medisumcode.build(wrong, diagnoses, tmp_path / "x.json")


def test_cli_build_and_errors(mimic: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    notes, diagnoses = mimic
    out = tmp_path / "MeDiSumCode.json"
    args = [
        "data",
        "build",
        "medisumcode",
        "--mimic-notes",
        str(notes),
        "--mimic-diagnoses",
        str(diagnoses),
        "--out",
        str(out),
        "--size",
        "5",
    ]
    assert main(args) == 0
    assert "records written: 5" in capsys.readouterr().out
    args[4] = str(tmp_path / "absent.csv")
    assert main(args) == 1
    err = capsys.readouterr().err.rstrip().split("\r")[-1]  # after the progress bars: one line
    assert err.startswith("clue: ") and "absent.csv: cannot be read" in err and "Traceback" not in err


def test_help_explains_every_option() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "clue", "data", "build", "medisumcode", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
    ).stdout
    for option in ("--mimic-notes", "--mimic-diagnoses", "--out", "--size", "--seed"):
        assert option in out
    assert "ICD-10 rows only" in out


def test_data_check_reports_found_missing_invalid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    monkeypatch.chdir(tmp_path)  # no pyproject.toml naming data files here

    data = tmp_path / "data"
    shutil.copytree(FIXTURE_DATA, data)
    results = {r.dataset.name: r for r in check(data)}
    assert results["MedNLI"].status == "found" and results["MedNLI"].records == 33
    assert results["MeQSum"].status == "missing"
    assert results["LongHealth"].records == 12  # questions, not the 5 repetitions each
    assert main(["data", "check", str(data)]) == 0
    out = capsys.readouterr().out
    assert "MISSING  MeQSum" in out and "paper: 1425" in out and "sha256 " in out
    assert main(["data", "check", str(data), "--strict"]) == 1
    (data / "mednli" / "mli_test_v1.jsonl").write_text('{"pairID": "x", "sentence1": "a"}\n')
    assert main(["data", "check", str(data)]) == 1
    out = capsys.readouterr().out
    assert "INVALID  MedNLI" in out and "mli_test_v1.jsonl, record line 1" in out


def test_data_check_refuses_a_file_linked_from_outside_the_data_folder(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "medisumcode").mkdir(parents=True)
    (data / "medisumcode" / "MeDiSumCode.json").symlink_to(FIXTURE_DATA / "medisumcode" / "MeDiSumCode.json")
    (result,) = [r for r in check(data) if r.dataset.name == "MeDiSumCode"]
    assert result.status == "invalid" and "points outside" in str(result.problem)


def test_paper_counts() -> None:
    assert {d.name: d.paper_records for d in DATASETS} == {
        "MedNLI": 1425,
        "MeQSum": 1000,
        "Problem Summary": 237,
        "LongHealth": 400,
        "MeDiSumQA": 453,
        "MeDiSumCode": 500,
    }


def test_medisumqa_build_through_a_backend_filters_echoing_pairs(mimic: tuple[Path, Path], tmp_path: Path) -> None:
    notes, _ = mimic
    replies = []
    for i in range(N_NOTES):
        text = (
            f"Q: Why was I admitted?\nA: You had condition {i}.\n"
            f"Q: What should I take every day?\nA: Take medication {i} every day.\n"
            f"Q: Is condition {i} serious?\nA: Is condition {i} serious?\n"
        )  # an answer that echoes the question
        replies.append({"task": medisumqa.TASK, "sample_id": f"{1000 + i}-DS-1", "text": text})
    (tmp_path / "generator.jsonl").write_text("".join(json.dumps(r) + "\n" for r in replies))
    (tmp_path / "models.toml").write_text('[models.writer]\npath = "generator.jsonl"\nbackend = "replay"\n')
    out = tmp_path / "MeDiSumQA.json"
    kwargs = {"notes": 6, "top_k": 12, "seed": 3, "cache_dir": tmp_path / "cache", "bertscore_model": "tiny-bert"}
    report = medisumqa.build(notes, tmp_path / "models.toml", "writer", out, **kwargs)  # type: ignore[arg-type]
    samples = get_task("medisumqa").load(out)
    assert report.pairs_parsed == 18 and report.written == len(samples) == 12
    assert not any(s.fields["Question"] == s.reference for s in samples)  # the echoing pairs were dropped
    assert all("Discharge Instructions" not in s.fields["discharge_summary"] for s in samples)
    assert all("Followup Instructions" in s.fields["discharge_summary"] for s in samples)
    again = medisumqa.build(notes, tmp_path / "models.toml", "writer", tmp_path / "again.json", **kwargs)  # type: ignore[arg-type]
    assert again.generations_reused == 6 and (tmp_path / "again.json").read_bytes() == out.read_bytes()


def test_medisumqa_build_sends_mimic_notes_to_no_host_the_data_use_guard_refuses(
    mimic: tuple[Path, Path], tmp_path: Path
) -> None:
    notes, _ = mimic
    (tmp_path / "models.toml").write_text(
        '[models.writer]\npath = "gpt"\nbackend = "openai"\nbase_url = "https://api.vendor.example/v1"\n'
        'tokenizer = "none"\n'
    )
    with pytest.raises(ConfigError, match=r"model 'writer': medisumqa is credentialed data .* api\.vendor\.example"):
        medisumqa.build(notes, tmp_path / "models.toml", "writer", tmp_path / "out.json", cache_dir=tmp_path / "c")
    assert not (tmp_path / "c").exists()  # refused before the store was opened, let alone the server


def test_medisumqa_parsing_and_selection() -> None:
    assert medisumqa.parse_pairs("Q1: a?\nA1: b\n\nQuestion: c?\nAnswer: d\nnoise") == [("a?", "b"), ("c?", "d")]
    assert medisumqa.split_instructions("no section here") is None
    pairs = [{"rouge_l": r, "bertscore": b} for r, b in [(0.9, 0.1), (0.1, 0.9), (0.5, 0.5), (0.0, 0.0)]]
    picked = medisumqa.select(pairs, 3)  # type: ignore[arg-type]
    assert picked == [pairs[3], pairs[0], pairs[1]]


def test_data_check_resolves_data_as_the_suite_does(tmp_path: Path) -> None:
    """`clue data check fixtures/data` reported MeQSum MISSING although [tool.clue] data named its file."""
    import shutil
    import subprocess
    import sys

    mednli = tmp_path / "elsewhere" / "mednli.jsonl"
    mednli.parent.mkdir()
    shutil.copy(FIXTURE_DATA / "mednli" / "mli_test_v1.jsonl", mednli)
    (tmp_path / "data").mkdir()
    config = '[tool.clue]\ndata_dir = "data"\ndata = ["mednli=elsewhere/mednli.jsonl"]\n'
    (tmp_path / "pyproject.toml").write_text(config)
    done = subprocess.run([sys.executable, "-m", "clue", "data", "check"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert re.search(r"found\s+MedNLI\s+33 pairs", done.stdout) and "MISSING  MeDiSumCode" in done.stdout
    override = subprocess.run(
        [sys.executable, "-m", "clue", "data", "check", "--data", "mednli=nowhere.jsonl"],
        cwd=tmp_path, capture_output=True, text=True,
    )  # fmt: skip
    assert "MISSING  MedNLI" in override.stdout and "nowhere.jsonl (named by --clue-data" in override.stdout
