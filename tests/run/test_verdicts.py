"""Verdicts that stay right on real models and fresh machines (issue 22): metric stand-ins identical on every
machine and fingerprinted by content, a baseline gated from another cache, the weights check that replaced the
identical-output failure, few-shot copies and floor effects shown, case ids that `-k` cannot confuse."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from clue.baseline import Reference
from clue.errors import ConfigError
from clue.metrics.bertscore import BertScoreConfig
from clue.metrics.scorers import Scorers
from clue.models.matrix import ModelSpec, check_matrix, pair_from_cli
from clue.run.gate import run_gate
from clue.tasks import get_task
from clue.types import Generation, MetricSpec, Sample, SampleScore, TaskResult
from tests.helpers import FIXTURE_DATA, REPO, write_replay_matrix
from tests.helpers.replay_project import make_project, run

pytest_plugins = ["pytester"]

BUILD = """
import json, sys
from pathlib import Path
from clue.models.tiny import build_tiny_bert, build_tiny_llama, folder_digest
from clue.metrics.bertscore import BertScorer, BertScoreConfig
out = Path(sys.argv[1])
bert, llama = build_tiny_bert(out / "bert"), build_tiny_llama(out / "llama", 0)
score = BertScorer(BertScoreConfig(str(bert), 2)).score(["chest pain and fever"], ["fever with chest pain"])[0]
print(json.dumps({"bert": folder_digest(bert), "llama": folder_digest(llama), "f1": score[2]}))
"""


def test_the_metric_stand_ins_are_the_same_model_in_every_fresh_cache(tmp_path: Path) -> None:
    """Before: the tiny BERT's WordPiece vocabulary was trained anew per cache and came out 582 to 586 tokens, so
    BERTScore on byte-identical outputs differed between machines (0.7369 vs 0.6710 measured)."""
    runs = [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", BUILD, str(tmp_path / f"cache{i}")], capture_output=True, text=True, check=True
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        for i in range(2)
    ]
    assert runs[0] == runs[1]


def test_a_local_metric_model_is_fingerprinted_by_its_content(tmp_path: Path) -> None:
    """Before: the metric fingerprint was only the model's name, so a baseline scored with another folder of the
    same name was not refused."""
    import shutil

    from clue.models.tiny import build_tiny_bert

    folder = build_tiny_bert(tmp_path / "bert")
    first = Scorers(bertscore_config=BertScoreConfig(str(folder), 2), umls_config=None).bertscore_fingerprint()
    shutil.rmtree(folder)
    build_tiny_bert(folder, seed=1)  # same name, same tokenizer, other weights
    second = Scorers(bertscore_config=BertScoreConfig(str(folder), 2), umls_config=None).bertscore_fingerprint()
    assert first["model"] == second["model"] and first["model_files_sha256"] != second["model_files_sha256"]
    kb = REPO / "fixtures/umls/kb.jsonl"
    from clue.metrics.umls import ScispacyConfig

    umls = Scorers(umls_config=ScispacyConfig("ruler", str(kb))).umls_fingerprint()
    assert len(umls["linker_sha256"]) == 64


def problem_summary_outputs() -> list[dict[str, str]]:
    task = get_task("problem_summary")
    samples = task.load(FIXTURE_DATA / "problem_summary/BioNLP2023-1A-Test.csv")
    return [{"task": "problem_summary", "sample_id": s.id, "text": str(s.reference)} for s in samples]


def test_a_baseline_saved_in_one_cache_gates_from_another(pytester: pytest.Pytester) -> None:
    """Save a baseline in one fresh cache and reports folder, gate the same outputs from another fresh cache in
    another child process: identical numbers, non-inferior. Before: BERTScore came out 0.06 lower from the second
    cache and the unchanged model was REGRESSED."""
    (pytester.path / "data").symlink_to(FIXTURE_DATA)
    pytester.makepyfile(test_problem_summary=(REPO / "benchmarks/test_problem_summary.py").read_text())
    outputs = problem_summary_outputs()
    write_replay_matrix(pytester.path, {"base": outputs, "candidate": outputs})
    common = ["-p", "no:cacheprovider", "--clue-data-dir", "data", "--clue-bertscore-model", "tiny-bert"]
    common += ["--clue-umls-spacy-model", "off", "-W", "ignore::pytest.PytestAssertRewriteWarning"]
    first = pytester.runpytest_subprocess(
        *common, "--clue-matrix", "models.toml", "--clue-cache-dir", "cache-a", "--clue-reports-dir", "out-a",
        "--clue-save-baseline", "baseline.json",
    )  # fmt: skip
    first.assert_outcomes(passed=2)
    (pytester.path / "candidate.toml").write_text('[models.candidate]\npath = "candidate.jsonl"\nbackend = "replay"\n')
    second = pytester.runpytest_subprocess(
        *common, "--clue-matrix", "candidate.toml", "--clue-cache-dir", "cache-b", "--clue-reports-dir", "out-b",
        "--clue-baseline", "baseline.json#base",
    )  # fmt: skip
    second.assert_outcomes(passed=1)
    live = json.loads((pytester.path / "out-a/results/problem_summary/candidate.json").read_text())
    stored = json.loads((pytester.path / "out-b/results/problem_summary/candidate-vs-base.json").read_text())
    assert stored["verdict"] == "non-inferior"
    for name, metric in live["metrics"].items():
        assert stored["metrics"][name]["value"] == metric["value"], name
        assert stored["metrics"][name]["comparison"]["delta"] == 0.0


# -- the weights check ------------------------------------------------------------------------------------------
def zero_adapter(base: Path, out: Path) -> Path:
    """A LoRA adapter as peft initialises it (B = 0): saved before any training, it changes nothing."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"])).save_pretrained(str(out))
    return out


def test_an_adapter_that_changes_nothing_fails_and_a_dtype_conversion_passes(
    pytester: pytest.Pytester, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """The weights check compares next-token logits on fixed probe prompts, once per model: an untrained adapter
    computes its base's function bit for bit and fails; the same weights in bfloat16 compute another one and
    pass whatever their outputs (identical outputs are information only)."""
    from tests.backends.test_weights import make_adapter

    project = make_project(pytester)
    untrained = zero_adapter(tiny_model_dir, tmp_path / "untrained")
    trained = make_adapter(tiny_model_dir, tmp_path / "trained")
    (project.path / "models.toml").write_text(
        f'[models.base]\npath = "{tiny_model_dir}"\ndtype = "float32"\n\n'
        f'[models.untrained]\npath = "{tiny_model_dir}"\nadapter = "{untrained}"\ndtype = "float32"\nbase = "base"\n\n'
        f'[models.trained]\npath = "{tiny_model_dir}"\nadapter = "{trained}"\ndtype = "float32"\nbase = "base"\n\n'
        f'[models.bf16]\npath = "{tiny_model_dir}"\ndtype = "bfloat16"\nbase = "base"\n'
    )
    result = run(project, "-k", "mednli", "--clue-limit", "12", "--clue-min-samples", "2")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*WEIGHTS NOT APPLIED mednli: model 'untrained' vs base 'base'*",
            "*model 'untrained' computes the same next-token logits as base 'base' on 3 fixed probe prompts*",
        ]
    )
    records = {
        name: json.loads((project.path / f"out/results/mednli/{name}.json").read_text())
        for name in ("untrained", "trained", "bf16")
    }
    assert records["untrained"]["weights_check"] == "identical"
    assert records["trained"]["weights_check"] == records["bf16"]["weights_check"] == "differs"
    assert records["untrained"]["identical_outputs"]["n"] == 12
    # a second run loads nothing and still knows every probe (the store has them)
    again = run(project, "-k", "mednli", "--clue-limit", "12", "--clue-min-samples", "2")
    again.assert_outcomes(passed=3, failed=1)
    again.stdout.fnmatch_lines(["*model loads: base 0, bf16 0, trained 0, untrained 0*"])


def test_two_entries_running_the_same_model_are_a_start_up_error(tiny_model_dir: Path) -> None:
    same = {
        "a": ModelSpec("a", path=str(tiny_model_dir)),
        "b": ModelSpec("b", path=str(tiny_model_dir) + "/", base="a"),
    }
    with pytest.raises(ConfigError, match="models 'a' and 'b' would run exactly the same model"):
        check_matrix(same, "m.toml")
    check_matrix({**same, "b": ModelSpec("b", path=str(tiny_model_dir), dtype="bfloat16", base="a")}, "m.toml")
    with pytest.raises(ConfigError, match="would run exactly the same model"):
        pair_from_cli(str(tiny_model_dir), str(tiny_model_dir))


# -- diagnostics ----------------------------------------------------------------------------------------------------
def test_few_shot_copies_are_detected_per_task() -> None:
    code_task = get_task("medisumcode")
    shot = Sample("s", {"text": "..."}, ("I10", "E119"))
    copied = SampleScore("x", {}, ["E119", "I10"])
    assert code_task.copies_shot([shot], Generation("x", "ICD-10 Codes: E119, I10", 1, 1, "stop", 0), copied)
    assert not code_task.copies_shot([shot], Generation("x", "", 1, 1, "stop", 0), SampleScore("x", {}, ["I10"]))
    text_task = get_task("meqsum")
    question = Sample("q", {"question": "..."}, "What are the side effects of metformin?")
    same = Generation("y", " what are the side effects of  metformin? ", 1, 1, "stop", 0)
    assert text_task.copies_shot([question], same, SampleScore("y", {}))
    assert not get_task("mednli").detects_shot_copies  # every answer is one of three labels


def _result(model: str, values: list[float]) -> TaskResult:
    spec = MetricSpec("accuracy", "accuracy", kind="binary")
    samples = tuple(SampleScore(f"s{i}", {"accuracy": v}) for i, v in enumerate(values))
    generations = tuple(Generation(f"s{i}", f"answer {v}", 1, 1, "stop", 0) for i, v in enumerate(values))
    return TaskResult("mednli", model, (spec,), samples, generations, {}, {})


def test_a_comparison_at_the_floor_says_it_measures_nothing() -> None:
    """Before: both models at accuracy 0.000 on LongHealth, CI [0, 0], were reported "non-inferior" and nothing
    more."""
    from clue.config import settings_from

    settings = settings_from(REPO, [])
    floor = run_gate(_result("m", [0.0] * 40), Reference.from_result(_result("b", [0.0] * 40)), settings)
    assert floor.floor_ceiling is not None and "both models score 0 on 40 of 40 samples" in floor.floor_ceiling
    mixed = [0.0, 1.0] * 20
    assert run_gate(_result("m", mixed), Reference.from_result(_result("b", mixed)), settings).floor_ceiling is None


def test_a_baseline_file_name_never_reaches_the_case_id(pytester: pytest.Pytester) -> None:
    """Before: the case id carried the baseline's file stem, so `-k mednli` with --clue-baseline
    baseline-fp32-mednli16.json selected every task."""
    from tests.helpers.replay_project import answers, code_answers

    project = make_project(pytester)
    write_replay_matrix(project.path, {m: answers(set()) + code_answers() for m in ("base", "candidate")})
    run(project, "--clue-save-baseline", "baseline-fp32-mednli16.json").assert_outcomes(passed=4)
    (project.path / "candidate.toml").write_text('[models.candidate]\npath = "candidate.jsonl"\nbackend = "replay"\n')
    options = ["--clue-matrix", "candidate.toml", "--clue-baseline", "baseline-fp32-mednli16.json#base"]
    result = run(project, "-k", "mednli", *options)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*mednli [[]candidate-vs-base[]] vs baseline base*"])
    labelled = run(project, "-k", "release", *options[:3], "baseline-fp32-mednli16.json#base=release-1")
    labelled.assert_outcomes(passed=2)  # both tasks: the label is the user's
