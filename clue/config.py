"""clue's run configuration: one pure Settings object, built from layers of sources (the command line, ini options
and `[tool.clue]` for the pytest plugin; `clue.evaluate()`'s arguments and `[tool.clue]` for Python).

Precedence: the first layer that sets an option wins (pytest: command line > `[tool.pytest.ini_options]` (`clue_*`
keys) > `[tool.clue]` in pyproject.toml > the built-in default); margins merge key by key. Relative paths are taken
from the layer's folder (the invocation directory for the command line, the rootdir for configuration files).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from clue import stats
from clue.errors import ConfigError
from clue.types import MetricSpec

LONGHEALTH_MAX_TOKENS = 8140  # CLUE's scripts/launch_scripts/run_LongHealth8k.sh: --max_len 8140

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class _Opt:
    name: str
    help: str
    type: Any = str
    default: Any = None
    metavar: str | None = None
    action: str | None = None  # "store_true" or "append"


OPTIONS: tuple[_Opt, ...] = (
    _Opt(
        "model",
        "the model to evaluate: a local folder or a Hugging Face id (test id: 'candidate'); overrides the model matrix",
        metavar="PATH_OR_ID",
    ),
    _Opt("base_model", "the base model --clue-model is gated against (test id: 'base')", metavar="PATH_OR_ID"),
    _Opt(
        "matrix",
        "model matrix TOML file listing several models and their bases (default from [tool.clue] matrix)",
        metavar="FILE",
    ),
    _Opt("dtype", "dtype for --clue-model/--clue-base-model: auto, float32, float16, bfloat16", default="auto"),
    _Opt(
        "chat_template",
        "Jinja chat template file overriding the tokenizer's, for --clue-model/--clue-base-model",
        metavar="FILE",
    ),
    _Opt(
        "max_model_len",
        "context length for --clue-model/--clue-base-model (default: the model config's)",
        type=int,
        metavar="TOKENS",
    ),
    _Opt(
        "data_dir",
        "folder with one sub-folder per task holding its published file, e.g. DIR/mednli/mli_test_v1.jsonl",
        metavar="DIR",
    ),
    _Opt(
        "data",
        "one task's data file, overriding --clue-data-dir (repeatable); TASK is a task name (a typo is a usage error "
        "listing them) or longhealth for all three LongHealth sub-tasks, which share one benchmark file",
        metavar="TASK=FILE",
        action="append",
    ),
    _Opt("reports_dir", "where results JSON and JUnit XML go", default="reports", metavar="DIR"),
    _Opt(
        "cache_dir",
        "where the generation store (generations.sqlite3, mode 0600), the metric memo and the built tiny models live",
        default=".clue-cache",
        metavar="DIR",
    ),
    _Opt(
        "margin",
        "non-inferiority margin on the metric's 0-1 scale: a model regresses when the upper confidence bound of "
        "model minus base lies below -margin. VALUE sets every metric's margin; METRIC=VALUE one metric's "
        f"(repeatable). Defaults: {stats.DEFAULT_MARGIN}, bertscore_f1 0.005 (README: margins)",
        metavar="[METRIC=]VALUE",
        action="append",
    ),
    _Opt(
        "alpha",
        "one-sided significance level of the paired tests; the CI shown is the two-sided "
        f"1-2*alpha interval (default {stats.DEFAULT_ALPHA}, i.e. a 95 percent interval)",
        type=float,
    ),
    _Opt(
        "baseline",
        "gate every model that is no other model's base against this stored baseline (written by "
        "--clue-save-baseline), without loading or generating the baseline's model; each baseline is its own test "
        "case, '<model>-vs-<recorded model>' (the model name stored in the baseline, not the file's name; "
        "FILE=LABEL sets another). FILE#MODEL picks one model of a file holding several (repeatable)",
        metavar="FILE[#MODEL][=LABEL]",
        action="append",
    ),
    _Opt(
        "save_baseline",
        "after the run, write every finished task x model's per-sample scores, with hashed sample ids, prompts and "
        "outputs and what produced them (data hash, protocol, decoding, metric fingerprints), to FILE: no text, "
        "small enough to commit",
        metavar="FILE",
    ),
    _Opt(
        "sequential",
        "group-sequential gate: generate each gated model's samples in a seeded order, look at the comparison every "
        "--clue-sequential-look-every units and stop generating once every gated metric crossed a boundary "
        "(O'Brien-Fleming alpha spending, same error rates as the fixed gate; docs/performance.md)",
        action="store_true",
    ),
    _Opt(
        "sequential_look_every",
        "with --clue-sequential: units (samples, or LongHealth questions) between looks (default 100)",
        type=int,
        metavar="N",
    ),
    _Opt(
        "require_data",
        "fail (instead of skip) a selected task whose data is missing: a mistyped --clue-data-dir must not pass a "
        "CI gate (--clue-strict does this too)",
        action="store_true",
    ),
    _Opt(
        "debug",
        "show the full traceback, with local variables, when a clue test fails or errors. Off by default: a "
        "traceback prints the fixtures' arguments and the engine's messages, which may hold patient text (samples, "
        "prompts, outputs), and it lands in junit.xml and the CI log. Never share the artefacts of such a run",
        action="store_true",
    ),
    _Opt(
        "strict",
        "fail inconclusive comparisons too (default: pass with a warning). A strict gate passes only when every "
        "gated metric is shown non-inferior, which needs margins larger than the comparison's MDE (shown in the "
        "report): at n = 237 to 500 that is rarely the case for the default margins",
        action="store_true",
    ),
    _Opt(
        "rescore",
        "recompute metrics from stored generations only: no weights are loaded, and a generation missing from the "
        "store is an error",
        action="store_true",
    ),
    _Opt(
        "report_samples",
        "write raw sample ids, inputs, outputs and references into the results JSON and the "
        "HTML report; off by default because MIMIC-derived text is credentialed (public data sets are always "
        "shown)",
        action="store_true",
    ),
    _Opt(
        "resamples",
        f"bootstrap resamples for continuous metrics (default {stats.DEFAULT_RESAMPLES})",
        type=int,
    ),
    _Opt(
        "min_samples",
        "fewer independent units than this (paired samples, or clusters where a task repeats a question) make a "
        f"comparison inconclusive (default {stats.DEFAULT_MIN_SAMPLES})",
        type=int,
    ),
    _Opt(
        "seed",
        "sampling seed when --clue-temperature > 0 (part of the generation store's key; default 1)",
        type=int,
    ),
    _Opt(
        "fewshot_seed",
        "seed of the few-shot shuffle: 1 (default) is CLUE's split (random.seed(1); random.shuffle(data))",
        type=int,
    ),
    _Opt(
        "bootstrap_seed",
        "seed of the bootstrap resamples: changes confidence intervals only, never the stored generations (default 1)",
        type=int,
    ),
    _Opt(
        "limit",
        "score only the first N samples of each task after the few-shot split (quick runs)",
        type=int,
        metavar="N",
    ),
    _Opt(
        "batch_size",
        "prompts per batch for a third-party engine that batches with padding (default 8); clue's own engines do "
        "not use it: transformers runs each prompt alone, vLLM and servers schedule their own batches",
        type=int,
    ),
    _Opt(
        "cpu_threads",
        "torch threads for work on the CPU (generation, BERTScore). Default: OMP_NUM_THREADS if set (pytest -n "
        "sets each worker's share), else half the cores, at least 1: measured on a 2-core machine, 2 threads were "
        "no faster than 1 when idle and 3.3x slower when another job shared the machine (docs/performance.md)",
        type=int,
        metavar="N",
    ),
    _Opt(
        "max_failed_share",
        "when more than this share of a model's samples fail to generate, the test errors with the first error "
        "instead of scoring the failures as wrong answers (a systematic failure is not a verdict; default 0.05)",
        type=float,
        metavar="SHARE",
    ),
    _Opt(
        "longhealth_max_tokens",
        "LongHealth's prompt budget in tokens (system prompt, instructions, question, options and documents; "
        f"the model's context still applies): default {LONGHEALTH_MAX_TOKENS}, CLUE's run_LongHealth8k.sh; 0 = the "
        "model's context",
        type=int,
        metavar="TOKENS",
    ),
    _Opt(
        "gpus",
        "under pytest -n N: the GPU ids to split between workers, each worker getting its own slice as "
        "CUDA_VISIBLE_DEVICES; 'auto' (default) takes CUDA_VISIBLE_DEVICES or nvidia-smi's list, 'none' leaves "
        "the environment alone",
        default="auto",
        metavar="auto|none|0,1,...",
    ),
    _Opt(
        "temperature",
        "sampling temperature; 0 means greedy decoding (default 0; CLUE's scripts used 1.0)",
        type=float,
    ),
    _Opt("top_p", "nucleus sampling top-p, used when temperature > 0 (default 1.0)", type=float),
    _Opt(
        "rouge_stemmer",
        "Porter stemming in ROUGE: on or off (default off, as CLUE's published numbers: HF evaluate's rouge "
        "without use_stemmer); on is part of the metric's fingerprint",
        default="off",
        metavar="on|off",
    ),
    _Opt(
        "bertscore_model",
        "BERTScore model: a Hugging Face id or local folder (default "
        "allenai/scibert_scivocab_uncased, what CLUE's lang='en-sci' means; 'tiny-bert' builds an offline "
        "stand-in)",
        metavar="PATH_OR_ID",
    ),
    _Opt(
        "bertscore_layers",
        "which hidden layer BERTScore uses (default 8 for SciBERT; required for models bert-score does not know)",
        type=int,
    ),
    _Opt("bertscore_batch_size", "BERTScore batch size (default 64)", type=int),
    _Opt(
        "umls_spacy_model",
        "spaCy/scispacy pipeline for UMLS-entity F1 (default en_core_sci_sm; 'ruler' builds "
        "an offline EntityRuler from the --clue-umls-linker KB file; 'off' drops the metric)",
        metavar="NAME",
    ),
    _Opt(
        "umls_abbreviations",
        "resolve abbreviations (scispacy's AbbreviationDetector) before UMLS linking: on or off (default off, as "
        "CLUE: its linker asks for resolution but never adds the detector, so none happens)",
        default="off",
        metavar="on|off",
    ),
    _Opt(
        "umls_linker",
        "scispacy linker: 'umls' (default), another scispacy KB name, or a KB JSON Lines file "
        "whose index clue builds offline",
        metavar="NAME_OR_FILE",
    ),
)


@dataclass(frozen=True)
class Settings:
    rootpath: Path
    model: str | None
    base_model: str | None
    matrix: Path | None
    dtype: str
    chat_template: str | None
    max_model_len: int | None
    data_dir: Path | None
    data: dict[str, Path]
    reports_dir: Path
    cache_dir: Path
    baselines: tuple[str, ...]  # absolute FILE or FILE#MODEL
    save_baseline: Path | None
    margin: float | None  # None: each metric's own default
    margins: dict[str, float]
    alpha: float
    strict: bool
    debug: bool
    sequential: bool
    sequential_look_every: int
    require_data: bool
    report_samples: bool
    rescore: bool
    resamples: int
    min_samples: int
    seed: int
    fewshot_seed: int
    bootstrap_seed: int
    limit: int | None
    batch_size: int
    cpu_threads: int
    max_failed_share: float
    longhealth_max_tokens: int
    gpus: str
    temperature: float
    top_p: float
    rouge_stemmer: bool
    bertscore_model: str
    bertscore_layers: int | None
    bertscore_batch_size: int
    umls_spacy_model: str
    umls_abbreviations: bool
    umls_linker: str

    def margin_for(self, metric: MetricSpec) -> float:
        """A metric's margin: its own setting, else the global one, else the metric's default, else 0.02."""
        if metric.name in self.margins:
            return self.margins[metric.name]
        if self.margin is not None:
            return self.margin
        return metric.margin if metric.margin is not None else stats.DEFAULT_MARGIN


def default_cpu_threads() -> int:
    """OMP_NUM_THREADS when set (by the user, or by clue for each pytest -n worker: its share of the cores), else
    half the cores this process may use, at least 1: torch's default of every core oversubscribes a machine that
    other jobs share."""
    import os

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


def _baseline_files(items: Any, base: Path) -> tuple[str, ...]:
    """--clue-baseline values (a list, or one string from [tool.clue]) as absolute FILE or FILE#MODEL."""
    from clue.baseline import absolute_spec

    return tuple(
        absolute_spec(str(item), base, "--clue-baseline") for item in (items if isinstance(items, list) else [items])
    )


def tool_clue(rootpath: Path) -> dict[str, Any]:
    """The [tool.clue] table of rootpath/pyproject.toml ({} when there is none)."""
    pyproject = rootpath / "pyproject.toml"
    if not pyproject.is_file():
        return {}
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{pyproject}: invalid TOML: {exc}") from None
    table = data.get("tool", {}).get("clue", {})
    return table if isinstance(table, dict) else {}


def _convert(name: str, value: Any, kind: Any) -> Any:
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"clue option {name}: {value!r} is not a valid {kind.__name__}") from None


BERTSCORE_DEFAULT_MODEL = "allenai/scibert_scivocab_uncased"


def _flag(value: Any) -> bool:
    return bool(value) and str(value).lower() not in ("false", "0", "no")


def _on_off(name: str, value: Any) -> bool:
    text = str(value).strip().lower()
    if text in ("on", "true", "1", "yes"):
        return True
    if text in ("off", "false", "0", "no"):
        return False
    raise ConfigError(f"{name} expects on or off, got {value!r}")


def _margins(layers: Sequence[Layer]) -> tuple[float | None, dict[str, float]]:
    """The global margin and per-metric margins, merged key by key from the lowest layer up ([tool.clue]'s `margin`
    and `[tool.clue.margins]`, then ini `clue_margin` lines, then --clue-margin): a higher layer overrides only the
    keys it sets."""
    margin: float | None = None
    margins: dict[str, float] = {}
    for layer in reversed(layers):
        for key, value in (layer.values.get("margins") or {}).items():
            margins[str(key)] = _convert(f"{layer.label} margins {key}", value, float)
        items = layer.values.get("margin")
        for item in items if isinstance(items, list) else [items]:
            if item is None:
                continue
            metric, sep, text = str(item).rpartition("=")
            if sep:
                margins[metric.strip()] = _convert(f"{layer.label} margin {metric.strip()}", text, float)
            else:
                margin = _convert(f"{layer.label} margin", text, float)
    for name, value in [("margin", margin), *margins.items()]:
        if value is not None and (value < 0 or value != value):
            raise ConfigError(f"clue margin {name}: must be >= 0, got {value}")
    return margin, margins


@dataclass(frozen=True)
class Layer:
    """One source of settings: option name -> value (`margins`: a per-metric table), and the folder its relative
    paths are relative to. A value of None, "" or [] is not set."""

    label: str  # "command line", "ini", "[tool.clue]", "evaluate()"
    values: Mapping[str, Any]
    base: Path


KNOWN = frozenset({o.name for o in OPTIONS} | {"margins"})


def _is_set(value: Any) -> bool:
    return value is not None and value != [] and value != ""  # `0 in (None, [], "")` is False: 0 is a value


def settings_from(rootpath: Path, layers: Sequence[Layer]) -> Settings:
    """Settings from layers, highest precedence first (the command line, ini options, [tool.clue]; or evaluate()'s
    arguments, [tool.clue]), each option taken from the first layer that sets it (raises ConfigError)."""
    values = _pick(rootpath, layers)
    margin, margins = _checked_margins(layers)
    settings = _build(rootpath, values, margin, margins)
    if settings.bertscore_layers is None and settings.bertscore_model == BERTSCORE_DEFAULT_MODEL:
        settings = replace(settings, bertscore_layers=8)
    _validate(settings)
    return settings


_PATHS = ("matrix", "data_dir", "reports_dir", "cache_dir", "chat_template", "save_baseline")


def _pick(rootpath: Path, layers: Sequence[Layer]) -> dict[str, Any]:
    """Each option's value from the first layer that sets it, paths resolved against that layer's folder."""
    for layer in layers:
        unknown = set(layer.values) - KNOWN
        if unknown:
            raise ConfigError(f"{layer.label}: unknown clue option(s) {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    for opt in OPTIONS:
        source = next((la for la in layers if _is_set(la.values.get(opt.name))), None)
        value, base = (opt.default, rootpath) if source is None else (source.values[opt.name], source.base)
        if (opt.name == "umls_linker" and value and str(value).endswith(".jsonl")) or (opt.name in _PATHS and value):
            value = (base / str(value)).resolve()
        elif opt.name == "data":
            value = data_files(value or [], base, "--clue-data")
            if source is not None and source.label in _NAMED_NOW:
                _require_files(value)
        elif opt.name == "baseline":
            value = _baseline_files(value or [], base)
        values[opt.name] = value
    values.pop("margin")  # margins merge key by key across layers: _checked_margins
    return values


# layers whose data files were named for this run: a file that is not there is a typo, not a data set to skip (a
# configuration file may name one a checkout does not have, e.g. the public MeQSum file: skipped with a message)
_NAMED_NOW = ("command line", "evaluate()")


def _require_files(files: dict[str, Path]) -> None:
    missing = sorted({str(path) for path in files.values() if not path.is_file()})
    if missing:
        raise ConfigError(f"--clue-data: no such file: {', '.join(missing)}")


def _checked_margins(layers: Sequence[Layer]) -> tuple[float | None, dict[str, float]]:
    margin, margins = _margins(layers)
    if margins:
        from clue.tasks import metric_names

        known = metric_names()
        if set(margins) - known:
            raise ConfigError(
                f"--clue-margin: unknown metric(s) {', '.join(sorted(set(margins) - known))}; "
                f"metrics: {', '.join(sorted(known))}"
            )
    return margin, margins


def _build(rootpath: Path, values: dict[str, Any], margin: float | None, margins: dict[str, float]) -> Settings:
    def number(name: str, kind: Any, default: Any) -> Any:
        value = values.get(name)
        return default if value is None else _convert(name, value, kind)

    return Settings(
        rootpath=rootpath,
        model=values["model"],
        base_model=values["base_model"],
        matrix=values["matrix"],
        dtype=str(values["dtype"]),
        chat_template=str(values["chat_template"]) if values["chat_template"] else None,
        max_model_len=number("max_model_len", int, None),
        data_dir=values["data_dir"],
        data=values["data"],
        reports_dir=values["reports_dir"],
        cache_dir=values["cache_dir"],
        baselines=values["baseline"],
        save_baseline=values["save_baseline"],
        margin=margin,
        margins=margins,
        alpha=number("alpha", float, stats.DEFAULT_ALPHA),
        strict=_flag(values["strict"]),
        debug=_flag(values["debug"]),
        sequential=_flag(values["sequential"]),
        sequential_look_every=number("sequential_look_every", int, 100),
        require_data=_flag(values["require_data"]),
        report_samples=_flag(values["report_samples"]),
        rescore=_flag(values["rescore"]),
        resamples=number("resamples", int, stats.DEFAULT_RESAMPLES),
        min_samples=number("min_samples", int, stats.DEFAULT_MIN_SAMPLES),
        seed=number("seed", int, 1),
        fewshot_seed=number("fewshot_seed", int, 1),
        bootstrap_seed=number("bootstrap_seed", int, 1),
        limit=number("limit", int, None),
        batch_size=number("batch_size", int, 8),
        cpu_threads=number("cpu_threads", int, 0) or default_cpu_threads(),
        max_failed_share=number("max_failed_share", float, 0.05),
        longhealth_max_tokens=number("longhealth_max_tokens", int, LONGHEALTH_MAX_TOKENS),
        gpus=str(values["gpus"]).strip() or "auto",
        temperature=number("temperature", float, 0.0),
        top_p=number("top_p", float, 1.0),
        rouge_stemmer=_on_off("--clue-rouge-stemmer", values["rouge_stemmer"]),
        bertscore_model=str(values["bertscore_model"] or BERTSCORE_DEFAULT_MODEL),
        bertscore_layers=number("bertscore_layers", int, None),
        bertscore_batch_size=number("bertscore_batch_size", int, 64),
        umls_spacy_model=str(values["umls_spacy_model"] or "en_core_sci_sm"),
        umls_abbreviations=_on_off("--clue-umls-abbreviations", values["umls_abbreviations"]),
        umls_linker=str(values["umls_linker"] or "umls"),
    )


def _validate(settings: Settings) -> None:
    from clue.models import DTYPES

    if settings.dtype not in DTYPES:
        raise ConfigError(f"--clue-dtype {settings.dtype!r} is not one of {', '.join(DTYPES)}")
    if not 0 < settings.alpha < 0.5:
        raise ConfigError(f"--clue-alpha must be between 0 and 0.5 (one-sided level), got {settings.alpha}")
    for name in ("resamples", "batch_size", "cpu_threads", "sequential_look_every"):
        if getattr(settings, name) < 1:
            raise ConfigError(f"--clue-{name.replace('_', '-')} must be at least 1")
    if settings.limit is not None and settings.limit < 1:
        raise ConfigError("--clue-limit must be at least 1")
    if not 0 <= settings.max_failed_share <= 1:
        raise ConfigError(f"--clue-max-failed-share must be between 0 and 1, got {settings.max_failed_share}")
    if settings.sequential and settings.save_baseline is not None:
        raise ConfigError(
            "--clue-save-baseline with --clue-sequential: a sequential run scores only the samples it generated "
            "before stopping; save baselines from a full run"
        )
    if settings.longhealth_max_tokens < 0:
        raise ConfigError("--clue-longhealth-max-tokens must be >= 0 (0: the model's context only)")
    if settings.temperature < 0:
        raise ConfigError("--clue-temperature must be >= 0")


def apply_cpu_threads(threads: int) -> None:
    """Apply --clue-cpu-threads before a model or metric model runs on the CPU, without importing torch: to torch if
    it is loaded, else through OMP_NUM_THREADS, which torch reads when a backend or BERTScore first imports it
    (importing torch here would load it for runs that never need it, e.g. replayed outputs)."""
    torch = sys.modules.get("torch")
    if torch is None:
        os.environ["OMP_NUM_THREADS"] = str(threads)
    elif torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
