"""The option declarations: one frozen section of `Settings` per stage (models, data, outputs, gate, generation,
scoring; the tasks' own knobs are in clue/tasks/options.py), each field an option declared with
`option(default, help, ...)` (clue/util/options.py): its annotation is its type, its default the default (rendered
into the help), its metadata the check and how a raw value is read."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clue.errors import ConfigError
from clue.models.matrix import DTYPES
from clue.statistics import paired as stats
from clue.tasks.options import TaskOptions
from clue.types import MetricSpec
from clue.util.options import COUNT_MAX, SEED_MAX, TOKENS_MAX, between, one_of, option

BERTSCORE_DEFAULT_MODEL = "allenai/scibert_scivocab_uncased"


def _data(value: Any, base: Path, flag: str) -> dict[str, Path]:
    return data_files(value or [], base, flag)


def _baseline_files(items: Any, base: Path, flag: str) -> tuple[str, ...]:
    """--clue-baseline values (a list, or one string from [tool.clue]; None: none) as absolute FILE or FILE#MODEL."""
    from clue.baseline import absolute_spec

    listed = items if isinstance(items, list) else [] if items is None else [items]
    return tuple(absolute_spec(str(item), base, flag) for item in listed)


def _linker(value: Any, base: Path, flag: str) -> str:
    """A scispacy KB name, or a KB JSON Lines file (a path, resolved against the layer's folder)."""
    text = str(value)
    return str((base / text).resolve()) if text.endswith(".jsonl") else text


def _gpu_list(value: Any, base: Path, flag: str) -> str:
    """`auto`, `none` or GPU ids; blank is the default, auto."""
    return str(value).strip() or "auto"


def _path_text(value: Any, base: Path, flag: str) -> str:
    return str((base / str(value)).resolve())


def _tracking_uri(value: Any, base: Path, flag: str) -> str:
    """An MLflow tracking URI (http(s)://, sqlite:///, file:, databricks, ...) as given; a plain path is a local
    file store, relative to where the option was set. Credentials belong in MLflow's environment variables."""
    text = str(value).strip()
    if not text or not text.isprintable() or any(c.isspace() for c in text):
        raise ValueError(f"{value!r} is not a tracking URI (e.g. http://127.0.0.1:5000, sqlite:///mlflow.db)")
    if re.search(r"//[^/@]*:[^/@]*@", text):
        raise ValueError(
            "the URI carries a password; set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD instead "
            "(a URI is printed in logs)"
        )
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", text) and not re.match(r"[A-Za-z]:[\\/]", text):
        return text
    return str((base / text).resolve())


ALPHA_MIN = 1e-4  # a smaller level is a tail the bootstrap cannot resolve with at most RESAMPLES_MAX resamples
PHRASINGS_MAX = 16  # the reference and 15 alternatives: each one is a full generation of the task
RESAMPLES_MAX = 1_000_000  # 8 MB of replicates per metric, seconds per comparison; 10**11 filled 23 GB and died


def _alpha(value: float) -> str | None:
    if ALPHA_MIN <= value < 0.5:
        return None
    return f"must be at least {ALPHA_MIN:g} and below 0.5 (a one-sided level), got {value:g}"


def _top_p(value: float) -> str | None:
    return None if 0 < value <= 1 else f"must be above 0 and at most 1 (a probability mass), got {value:g}"


@dataclass(frozen=True)
class ModelOptions:
    """Which models run (a matrix, or --clue-model and its base) and how the command-line pair is loaded."""

    model: str | None = option(
        None,
        "the model to evaluate: a local folder or a Hugging Face id (test id: 'candidate'); overrides the model matrix",
        metavar="PATH_OR_ID",
    )
    base_model: str | None = option(
        None, "the base model --clue-model is gated against (test id: 'base')", metavar="PATH_OR_ID"
    )
    matrix: Path | None = option(
        None, "model matrix TOML file listing several models and their bases", metavar="FILE", shown="none"
    )
    dtype: str = option(
        "auto", "dtype for --clue-model/--clue-base-model: auto, float32, float16, bfloat16", check=one_of(DTYPES)
    )
    chat_template: str | None = option(
        None,
        "Jinja chat template file overriding the tokenizer's, for --clue-model/--clue-base-model",
        metavar="FILE",
        parse=_path_text,
        shown="the tokenizer's",
    )
    max_model_len: int | None = option(
        None,
        "context length for --clue-model/--clue-base-model",
        metavar="TOKENS",
        check=between(1, TOKENS_MAX),
        shown="the model config's",
    )


@dataclass(frozen=True)
class DataOptions:
    """Where each task's data is and how much of it is scored."""

    data_dir: Path | None = option(
        None,
        "folder with one sub-folder per task holding its published file, e.g. DIR/mednli/mli_test_v1.jsonl",
        metavar="DIR",
        shown="none",
    )
    data: dict[str, Path] = option(
        {},
        "one task's data file, overriding --clue-data-dir (repeatable); TASK is a task name (a typo is a usage error "
        "listing them) or longhealth for all three LongHealth sub-tasks, which share one benchmark file",
        metavar="TASK=FILE",
        repeat=True,
        parse=_data,
    )
    require_data: bool = option(
        False,
        "fail (instead of skip) a selected task whose data is missing: a mistyped --clue-data-dir must not pass a "
        "CI gate (--clue-strict does this too)",
    )
    limit: int | None = option(
        None,
        "score only the first N samples of each task after the few-shot split (quick runs)",
        metavar="N",
        check=between(1, COUNT_MAX),
        shown="every sample",
    )
    fewshot_seed: int = option(
        1,
        "seed of the few-shot shuffle: 1 is CLUE's split (random.seed(1); random.shuffle(data))",
        check=between(0, SEED_MAX),
    )


@dataclass(frozen=True)
class OutputOptions:
    """Where results, reports and the generation store go, and what they may hold."""

    reports_dir: Path = option(Path("reports"), "where results JSON and JUnit XML go", metavar="DIR")
    cache_dir: Path = option(
        Path(".clue-cache"),
        "where the generation store (generations.sqlite3, mode 0600), the metric memo and the built tiny models live",
        metavar="DIR",
    )
    save_baseline: Path | None = option(
        None,
        "after the run, write every finished task x model's per-sample scores, with hashed sample ids, prompts and "
        "outputs and what produced them (data hash, protocol, decoding, metric fingerprints), to FILE: no text, "
        "small enough to commit",
        metavar="FILE",
        shown="none",
    )
    report_samples: bool = option(
        False,
        "write raw sample ids, inputs, outputs and references into the results JSON and the "
        "HTML report; off by default because MIMIC-derived text is credentialed (public data sets are always "
        "shown)",
    )
    mlflow: str | None = option(
        None,
        "after the run's reports are written, log each case to this MLflow tracking store (http(s)://HOST:PORT, "
        "sqlite:///FILE, a folder): one parent run per session, a nested run per case with its parameters, metrics, "
        'verdict tags and results JSON; never a sample\'s text. Needs pip install "clue[mlflow]"; a store that is '
        "down is one error after the reports, the verdicts stand",
        metavar="URI",
        parse=_tracking_uri,
        shown="none",
    )
    mlflow_experiment: str = option(
        "clue", "the MLflow experiment --clue-mlflow logs to (created when missing)", metavar="NAME"
    )
    debug: bool = option(
        False,
        "show the full traceback, with local variables, when a clue test fails or errors. Off by default: a "
        "traceback prints the fixtures' arguments and the engine's messages, which may hold patient text (samples, "
        "prompts, outputs), and it lands in junit.xml and the CI log. Never share the artefacts of such a run",
    )


@dataclass(frozen=True)
class GateOptions:
    """How a model is compared with its base: margins, the tests' level and resampling, what fails a case."""

    margin: float | None = option(
        None,
        "non-inferiority margin on the metric's 0-1 scale: a model regresses when the upper confidence bound of "
        "model minus base lies below -margin. VALUE sets every metric's margin; METRIC=VALUE one metric's "
        "(repeatable; README: margins)",
        metavar="[METRIC=]VALUE",
        repeat=True,
        shown=f"{stats.DEFAULT_MARGIN}, bertscore_f1 0.005",
    )
    # per-metric margins: not an option of its own, filled from `margin`'s METRIC=VALUE items and [tool.clue.margins]
    margins: Mapping[str, float] = field(default_factory=dict)
    alpha: float = option(
        stats.DEFAULT_ALPHA,
        "one-sided significance level of the paired tests; the CI shown is the two-sided 1-2*alpha interval (0.025: "
        "a 95 percent interval)",
        check=_alpha,
    )
    baseline: tuple[str, ...] = option(
        (),
        "gate every model that is no other model's base against this stored baseline (written by "
        "--clue-save-baseline), without loading or generating the baseline's model; each baseline is its own test "
        "case, '<model>-vs-<recorded model>' (the model name stored in the baseline, not the file's name; "
        "FILE=LABEL sets another). FILE#MODEL picks one model of a file holding several (repeatable)",
        metavar="FILE[#MODEL][=LABEL]",
        repeat=True,
        parse=_baseline_files,
        shown="none",
    )
    strict: bool = option(
        False,
        "fail inconclusive comparisons too (default: pass with a warning). A strict gate passes only when every "
        "gated metric is shown non-inferior, which needs margins larger than the comparison's MDE (shown in the "
        "report): at n = 237 to 500 that is rarely the case for the default margins",
    )
    sequential: bool = option(
        False,
        "group-sequential gate: generate each gated model's samples in a seeded order, look at the comparison every "
        "--clue-sequential-look-every units and stop generating once every gated metric crossed a boundary "
        "(O'Brien-Fleming alpha spending, same error rates as the fixed gate; docs/performance.md)",
    )
    sequential_look_every: int = option(
        100,
        "with --clue-sequential: units (samples, or LongHealth questions) between looks",
        metavar="N",
        check=between(1, COUNT_MAX),
    )
    phrasings: int = option(
        1,
        "instruction wordings per task (README: phrasings): each model generates every selected task under the "
        "reference wording (CLUE's) and N-1 alternatives (yours from --clue-wordings first, then clue's, reviewed "
        "in docs/phrasings.md); the case regresses when any wording or their per-sample mean regressed, improves "
        "only when the mean improved and no wording regressed (one Holm family). Costs N times the generation",
        metavar="N",
        check=between(1, PHRASINGS_MAX),
    )
    wordings: Path | None = option(
        None,
        'a TOML file of your own wordings of tasks\' instructions, one table per task (id = "text"), each naming '
        "the task's output format; with --clue-phrasings N they come before clue's alternatives",
        metavar="FILE",
        shown="none",
    )
    resamples: int = option(
        stats.DEFAULT_RESAMPLES, "bootstrap resamples for continuous metrics", check=between(100, RESAMPLES_MAX)
    )
    min_samples: int = option(
        stats.DEFAULT_MIN_SAMPLES,
        "fewer independent units than this (paired samples, or clusters where a task repeats a question) make a "
        "comparison inconclusive",
        check=between(1, COUNT_MAX),
    )
    bootstrap_seed: int = option(
        1,
        "seed of the bootstrap resamples: changes confidence intervals only, never the stored generations",
        check=between(0, SEED_MAX),
    )
    contamination: str = option(
        "report",
        "the contamination diagnostic (README: contamination): 'report' scores each gated case's reference answers "
        "and their perturbed neighbours under the model and its base and reports whether the gain looks like "
        "memorised test items, without changing a verdict; 'fail' also fails a flagged case; 'off' skips it",
        metavar="MODE",
        check=one_of(("report", "fail", "off")),
    )
    contamination_items: int = option(
        200,
        "samples per task the contamination diagnostic scores: the first N of the whole test file in an order fixed "
        "by its bytes, whatever --clue-limit is (a baseline saved at one limit serves another)",
        metavar="N",
        check=between(10, COUNT_MAX),
    )
    contamination_margin: float = option(
        0.35,
        "a case is flagged when the lower confidence bound of its mean contamination statistic (gain over the base "
        "on the exact answer minus the gain on its neighbours, nats per token) exceeds this",
        metavar="NATS",
        check=between(0, 100),
    )
    contamination_item_threshold: float = option(
        0.5,
        "an item looks memorised when its own contamination statistic (nats per token) exceeds this: the share of "
        "such items is reported",
        metavar="NATS",
        check=between(0, 100),
    )
    contamination_reference: dict[str, Path] = option(
        {},
        "a file of one task's items that the model cannot have trained on (your own unseen items, or items written "
        "after its training data), in the task's own data format (repeatable): the contamination diagnostic then "
        "flags a case when d on the test items exceeds d on these, which tells memorised test items from a model "
        "that learnt the task (docs/contamination.md); a baseline saved with it carries the base model's scores",
        metavar="TASK=FILE",
        repeat=True,
        parse=_data,
    )

    def margin_for(self, metric: MetricSpec) -> float:
        """A metric's margin: its own setting, else the global one, else the metric's default, else 0.02."""
        if metric.name in self.margins:
            return self.margins[metric.name]
        if self.margin is not None:
            return self.margin
        return metric.margin if metric.margin is not None else stats.DEFAULT_MARGIN


@dataclass(frozen=True)
class GenerationOptions:
    """How outputs are generated (decoding is part of the store's key) and on what."""

    temperature: float = option(
        0.0, "sampling temperature; 0 means greedy decoding (CLUE's scripts used 1.0)", check=between(0, 10)
    )
    top_p: float = option(1.0, "nucleus sampling top-p, used when temperature > 0", check=_top_p)
    seed: int = option(
        1, "sampling seed when --clue-temperature > 0 (part of the generation store's key)", check=between(0, SEED_MAX)
    )
    batch_size: int = option(
        8,
        "prompts per batch for a third-party engine that batches with padding; clue's own engines do not use it: "
        "transformers runs each prompt alone, vLLM and servers schedule their own batches",
        check=between(1, 65536),
    )
    max_failed_share: float = option(
        0.05,
        "when more than this share of a model's samples fail to generate, the test errors with the first error "
        "instead of scoring the failures as wrong answers (a systematic failure is not a verdict)",
        metavar="SHARE",
        check=between(0, 1),
    )
    rescore: bool = option(
        False,
        "recompute metrics from stored generations only: no weights are loaded, and a generation missing from the "
        "store is an error",
    )
    cpu_threads: int = option(
        0,
        "torch threads for work on the CPU (generation, BERTScore); 0 or unset: OMP_NUM_THREADS if set (pytest -n "
        "sets each worker's share), else half the cores, at least 1: measured on a 2-core machine, 2 threads were "
        "no faster than 1 when idle and 3.3x slower when another job shared the machine (docs/performance.md)",
        metavar="N",
        check=between(1, 4096),
        shown="OMP_NUM_THREADS, else half the cores",
    )
    gpus: str = option(
        "auto",
        "under pytest -n N: the GPU ids to split between workers, each worker getting its own slice as "
        "CUDA_VISIBLE_DEVICES; 'auto' takes CUDA_VISIBLE_DEVICES or nvidia-smi's list, 'none' leaves "
        "the environment alone",
        metavar="auto|none|0,1,...",
        parse=_gpu_list,
    )


@dataclass(frozen=True)
class ScoringOptions:
    """The metric models and their settings (each part of its metric's fingerprint)."""

    rouge_stemmer: bool = option(
        False,
        "Porter stemming in ROUGE: on or off (off, as CLUE's published numbers: HF evaluate's rouge without "
        "use_stemmer); on is part of the metric's fingerprint",
        metavar="on|off",
        on_off=True,
    )
    bertscore_model: str = option(
        BERTSCORE_DEFAULT_MODEL,
        "BERTScore model: a Hugging Face id or local folder (SciBERT is what CLUE's lang='en-sci' means; "
        "'tiny-bert' builds an offline stand-in)",
        metavar="PATH_OR_ID",
    )
    bertscore_layers: int | None = option(
        None,
        "which hidden layer BERTScore uses (required for models bert-score does not know; at most the model's layers, "
        "checked when it loads)",
        check=between(1, 1024),
        shown="8 for SciBERT",
    )
    bertscore_batch_size: int = option(64, "BERTScore batch size", check=between(1, 65536))
    umls_spacy_model: str = option(
        "en_core_sci_sm",
        "spaCy/scispacy pipeline for UMLS-entity F1 ('ruler' builds an offline EntityRuler from the "
        "--clue-umls-linker KB file; 'off' drops the metric)",
        metavar="NAME",
    )
    umls_abbreviations: bool = option(
        False,
        "resolve abbreviations (scispacy's AbbreviationDetector) before UMLS linking: on or off (off, as CLUE: its "
        "linker asks for resolution but never adds the detector, so none happens)",
        metavar="on|off",
        on_off=True,
    )
    umls_linker: str = option(
        "umls",
        "scispacy linker: 'umls', another scispacy KB name, or a KB JSON Lines file whose index clue builds offline",
        metavar="NAME_OR_FILE",
        parse=_linker,
    )


@dataclass(frozen=True)
class Settings:
    """A run's settings, one frozen section per stage; each section's fields are its options."""

    rootpath: Path
    models: ModelOptions = field(default_factory=ModelOptions)
    data: DataOptions = field(default_factory=DataOptions)
    outputs: OutputOptions = field(default_factory=OutputOptions)
    gate: GateOptions = field(default_factory=GateOptions)
    generation: GenerationOptions = field(default_factory=GenerationOptions)
    scoring: ScoringOptions = field(default_factory=ScoringOptions)
    tasks: TaskOptions = field(default_factory=TaskOptions)


SECTIONS: tuple[str, ...] = ("models", "data", "outputs", "gate", "generation", "scoring", "tasks")


def default_cpu_threads() -> int:
    """OMP_NUM_THREADS when set (by the user, or by clue for each pytest -n worker: its share of the cores), else
    half the cores this process may use, at least 1: torch's default of every core oversubscribes a machine that
    other jobs share."""
    share = os.environ.get("OMP_NUM_THREADS", "")
    if share.isdigit() and int(share) > 0:
        return int(share)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // 2)


def data_files(pairs: Any, base: Path, flag: str) -> dict[str, Path]:
    """TASK=FILE pairs (a list, or one string from a configuration file) as task -> file, relative to `base`;
    the suite and `clue data check` read them the same way. TASK must name a task, or a family of tasks that share
    one file (`longhealth`: longhealth_task1..3, which read the one benchmark file); a name that matches nothing,
    or one task given two files, is a ConfigError listing what exists (a typo must not gate the fixture data)."""
    from clue.tasks import task_names

    known = task_names()
    files: dict[str, Path] = {}
    for pair in pairs if isinstance(pairs, list) else [pairs]:
        task, sep, file = str(pair).partition("=")
        task, file = task.strip(), file.strip()
        if not sep or not task or not file:
            raise ConfigError(f"{flag} expects TASK=FILE, got {pair!r}")
        targets = (
            [task] if task in known else [name for name in known if re.fullmatch(rf"{re.escape(task)}_task\d+", name)]
        )
        if not targets:
            families = sorted({name.rpartition("_task")[0] for name in known if re.search(r"_task\d+$", name)})
            raise ConfigError(
                f"{flag} {task}=...: no task {task!r}; tasks: {', '.join(known)} "
                f"(or {', '.join(families)} for all of its sub-tasks)"
            )
        for target in targets:
            path = (base / file).resolve()
            if files.get(target, path) != path:
                raise ConfigError(f"{flag}: task {target} is given two files, {files[target]} and {path}")
            files[target] = path
    return files


def apply_cpu_threads(threads: int) -> None:
    """Apply --clue-cpu-threads before a model or metric model runs on the CPU, without importing torch: to torch if
    it is loaded, else through OMP_NUM_THREADS, which torch reads when a backend or BERTScore first imports it
    (importing torch here would load it for runs that never need it, e.g. replayed outputs)."""
    torch = sys.modules.get("torch")
    if torch is None:
        os.environ["OMP_NUM_THREADS"] = str(threads)
    elif torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
