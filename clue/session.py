"""Session state: which models and tasks the selected tests need, their data, their generations and scores.

Generation is planned from the *selected* items (after -k / -m deselection): the first time a model's outputs are
needed, all of that model's selected tasks are generated in one go, so each model is loaded once per session
and then released before the next one is loaded.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from clue import baseline, sequential
from clue.backends import check_entry, load_backend
from clue.backends.base import Backend
from clue.config import Settings
from clue.errors import ClueError, ConfigError, DataError
from clue.fingerprint import file_sha256, memo_key
from clue.gate import gate_config, metric_scores
from clue.generation import StoredCounter, StoredRun
from clue.metrics import extra
from clue.metrics.bertscore import BertScoreConfig
from clue.metrics.extra import ExtraMetric
from clue.metrics.scorers import Scorers
from clue.metrics.umls import ScispacyConfig
from clue.models import ModelSpec, load_matrix, pair_from_cli
from clue.pseudonyms import hash_id
from clue.store import GenerationStore, canonical
from clue.tasks import get_task
from clue.tasks.base import Task
from clue.tiny import bertscore_stand_in
from clue.types import Generation, GenerationSettings, Prompt, Sample, SampleScore, TaskResult
from clue.version import __version__

PROBE_VERSION = 1  # of the weights probe: bump when PROBE_PROMPTS or the digest change
PROBE_COUNT = 3


@dataclass(frozen=True)
class TaskData:
    path: Path
    sha256: str
    shots: tuple[Sample, ...]
    scored: tuple[Sample, ...]
    total: int


@dataclass(frozen=True)
class SequentialStop:
    """Where a case's sequential gate stopped: the look, the units (pairs, or clusters) and samples it used of those
    available, the nominal level of that look and the boundary crossed (None: the data ran out first)."""

    look: int
    looks: int
    units: int
    units_available: int
    samples: int
    samples_available: int
    level: float
    boundary: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "look": self.look,
            "looks_planned": self.looks,
            "units_used": self.units,
            "units_available": self.units_available,
            "samples_used": self.samples,
            "samples_available": self.samples_available,
            "nominal_alpha": self.level,
            "boundary": self.boundary,
            "saved": 1 - self.samples / self.samples_available if self.samples_available else 0.0,
        }


class ClueSession:
    def __init__(self, settings: Settings, extra_metrics: Sequence[ExtraMetric] = ()):
        self.settings = settings
        # metrics added to tasks by installed packages (entry points) and by conftests (pytest_clue_metrics)
        self.extra_metrics = [*extra.installed(), *extra_metrics]
        self._models: dict[str, ModelSpec] | None = None
        self._cases: dict[str, ModelSpec] | None = None
        self._baseline_files: dict[Path, baseline.BaselineFile] | None = None
        self._prompt_hashes: dict[str, dict[str, str]] = {}
        self.selected: set[tuple[ModelSpec, str]] = set()  # (case entry, task) of every selected test
        self.stops: dict[tuple[str, str], SequentialStop] = {}  # (case id, task) -> where its sequential gate stopped
        self.plan: dict[str, set[str]] = defaultdict(set)
        self.loads: dict[str, int] = defaultdict(int)
        self.backend_seconds: float = 0.0  # constructing backends, loading weights, generating
        self.scoring_seconds: float = 0.0
        self.generated: dict[str, int] = defaultdict(int)
        self._data: dict[str, TaskData | ClueError] = {}
        self._generations: dict[tuple[str, str], tuple[Generation, ...] | str] = {}
        self._results: dict[tuple[str, str], TaskResult] = {}
        self._backend_info: dict[str, dict[str, Any]] = {}
        self.reused: dict[str, int] = defaultdict(int)
        self.probes: dict[str, str] = {}  # model -> digest of its next-token logits on fixed prompts (weights check)
        self._store: GenerationStore | None = None
        # (model, engine, done, total, tokens, seconds): set by the pytest plugin to show progress on the terminal
        self.progress: Callable[[str, str, int, int, int, float], None] | None = None
        self.scorers = Scorers(
            rouge_stemmer=settings.rouge_stemmer,
            bertscore_config=BertScoreConfig(
                settings.bertscore_model, settings.bertscore_layers, settings.bertscore_batch_size
            ),
            umls_config=None
            if settings.umls_spacy_model == "off"
            else ScispacyConfig(
                settings.umls_spacy_model, settings.umls_linker, resolve_abbreviations=settings.umls_abbreviations
            ),
            cache_dir=settings.cache_dir,
            bertscore_build=bertscore_stand_in(settings.bertscore_model, settings.cache_dir),
        )

    # -- models -------------------------------------------------------------------------------------------------
    @property
    def models(self) -> dict[str, ModelSpec]:
        if self._models is None:
            s = self.settings
            if s.model:
                extra: dict[str, Any] = {"dtype": s.dtype}
                if s.chat_template:
                    extra["chat_template"] = s.chat_template
                if s.max_model_len:
                    extra["max_model_len"] = s.max_model_len
                self._models = pair_from_cli(s.model, s.base_model, **extra)
            elif s.base_model:
                raise ConfigError("--clue-base-model needs --clue-model (the model to compare with it)")
            elif s.matrix:
                self._models = load_matrix(s.matrix)
            else:
                raise ConfigError(
                    "no models to evaluate: pass --clue-model PATH_OR_ID [--clue-base-model PATH_OR_ID], "
                    'or --clue-matrix FILE, or set matrix = "..." under [tool.clue] in pyproject.toml'
                )
        return self._models

    @property
    def cases(self) -> dict[str, ModelSpec]:
        """Test id -> the model's entry narrowed to the one thing its case compares it with: its base model
        (`base` set, id = the model's name), one stored baseline (`baselines` holds that one, id
        "<model>-vs-<baseline label>"), or nothing (a reference case, id = the model's name). --clue-baseline
        applies to every model that is no other model's base."""
        if self._cases is None:
            models = self.models
            bases = {m.base for m in models.values() if m.base}
            files = self.baseline_files
            cases: dict[str, ModelSpec] = {}
            for name, spec in models.items():
                named = list(dict.fromkeys([*spec.baselines, *(self.settings.baselines if name not in bases else ())]))
                refs = [baseline.resolve_ref(text, spec.base, files) for text in named]
                labels = [r.label for r in refs]
                if len(set(labels)) < len(labels):
                    raise ConfigError(
                        f"model {name!r}: two baselines are labelled alike ({', '.join(labels)}); name them "
                        "FILE#MODEL=LABEL (the label names the test case, <model>-vs-<label>)"
                    )
                views = [(name, replace(spec, baselines=()))] if spec.base or not refs else []
                views += [(f"{name}-vs-{r.label}", replace(spec, base=None, baselines=(r.spec,))) for r in refs]
                for case_id, view in views:
                    if case_id in cases:
                        raise ConfigError(f"two test cases would be named {case_id!r}: rename a model or baseline")
                    cases[case_id] = view
            self._cases = cases
        return self._cases

    def check_models(self) -> None:
        """Every entry's start-up checks (a GGUF header, an adapter's config, rank and base model, option
        combinations an engine refuses): a configuration error once, before any test, not at every case's setup."""
        for spec in self.models.values():
            check_entry(spec)

    @property
    def baseline_files(self) -> dict[Path, baseline.BaselineFile]:
        """Every baseline file the run names, read and checked once."""
        if self._baseline_files is None:
            named = [*self.settings.baselines, *(b for m in self.models.values() for b in m.baselines)]
            paths = dict.fromkeys(Path(baseline.split_spec(text)[0]) for text in named)
            self._baseline_files = {path: baseline.load(path) for path in paths}
        return self._baseline_files

    @property
    def store(self) -> GenerationStore:
        if self._store is None:
            self._store = GenerationStore(self.settings.cache_dir / "generations.sqlite3")
        return self._store

    def stats(self) -> dict[str, Any]:
        """What this process did: sent by xdist workers to the controller, merged there, written with the results."""
        return {
            "loads": dict(self.loads),
            "reused": dict(self.reused),
            "generated": dict(self.generated),
            "backend_s": self.backend_seconds,
            "scoring_s": self.scoring_seconds,
        }

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def generation_settings(self) -> GenerationSettings:
        s = self.settings
        return GenerationSettings(temperature=s.temperature, top_p=s.top_p, seed=s.seed, batch_size=s.batch_size)

    def need(self, case: ModelSpec, task: str) -> None:
        """Called for each selected item with its case's entry: the model's outputs for this task will be needed,
        and its base model's when the case compares with one (a stored baseline needs no generation)."""
        self.plan[case.name].add(task)
        self.selected.add((case, task))
        if case.base:
            self.plan[case.base].add(task)

    def task(self, name: str) -> Task:
        """The registry's task with this run's task options applied."""
        return get_task(name).configure(longhealth_max_tokens=self.settings.longhealth_max_tokens)

    def shown_id(self, task: str, sample_id: str) -> str:
        """A sample id as it may appear in results, reports, JUnit and messages: raw for public data sets or with
        --clue-report-samples, else hashed (MedNLI pairIDs, MIMIC hadm_ids and MeDiSumQA "note_id/question" ids,
        which hold question text, are credentialed)."""
        if get_task(task).public_data or self.settings.report_samples:
            return sample_id
        return hash_id(task, sample_id)

    # -- data ---------------------------------------------------------------------------------------------------
    def data_path(self, task: Task) -> Path | None:
        if task.name in self.settings.data:
            return self.settings.data[task.name]  # named explicitly by the user: taken as given
        if self.settings.data_dir is None:
            return None
        return task.find_data(self.settings.data_dir)  # DataError for a file resolving outside the folder

    def missing_data_reason(self, task: Task) -> str:
        if task.name in self.settings.data:
            return f"{task.title}: data file {self.settings.data[task.name]} (from --clue-data) does not exist"
        where = self.settings.data_dir / task.name if self.settings.data_dir else Path("<data dir>") / task.name
        return (
            f"{task.title}: no data; put {' or '.join(task.data_files)} in {where}/ "
            f"or pass --clue-data {task.name}=FILE"
        )

    def data(self, task: Task) -> TaskData | None:
        """The task's few-shot examples and scored samples; None when the file is absent; DataError if invalid."""
        if task.name not in self._data:
            try:
                path = self.data_path(task)
            except DataError as exc:
                self._data[task.name] = exc
                raise
            if path is None or not path.is_file():
                return None
            try:
                samples = task.load(path)
                shots, scored = task.split(samples, self.settings.fewshot_seed)
            except DataError as exc:
                if exc.path == "<data>":
                    exc = DataError(path, exc.problem)
                self._data[task.name] = exc
            else:
                digest = file_sha256(path)
                if self.settings.sequential:  # a seeded order fixed by task and data: every model sees the same
                    ranks = sequential.order(
                        [s.id for s in scored], [task.cluster_of(s) for s in scored], f"{task.name}\0{digest}"
                    )
                    scored = [scored[i] for i in ranks]
                if self.settings.limit:
                    scored = scored[: self.settings.limit]
                self._data[task.name] = TaskData(path, digest, tuple(shots), tuple(scored), len(samples))
        entry = self._data[task.name]
        if isinstance(entry, ClueError):
            raise entry
        return entry

    # -- generation ---------------------------------------------------------------------------------------------
    def generations(self, model: str, task_name: str) -> tuple[Generation, ...]:
        key = (model, task_name)
        if key not in self._generations:
            self._generate(model, sorted(self.plan[model] | {task_name}))
        entry = self._generations[key]
        if isinstance(entry, str):
            raise ClueError(entry)
        return entry

    def _cpu_threads(self) -> None:
        """Apply --clue-cpu-threads before a model or metric model runs on the CPU, without importing torch: to
        torch if it is loaded, else through OMP_NUM_THREADS, which torch reads when a backend or BERTScore first
        imports it (importing torch here would load it for runs that never need it, e.g. replayed outputs)."""
        threads = self.settings.cpu_threads
        torch = sys.modules.get("torch")
        if torch is None:
            os.environ["OMP_NUM_THREADS"] = str(threads)
        elif torch.get_num_threads() != threads:
            torch.set_num_threads(threads)

    def _generate(self, model: str, task_names: list[str]) -> None:
        spec = self.models[model]
        todo: list[tuple[Task, TaskData]] = []
        for name in task_names:
            if (model, name) in self._generations:
                continue
            task = self.task(name)
            try:
                data = self.data(task)
            except ClueError as exc:
                self._generations[(model, name)] = f"{exc}"
                continue
            if data is None:
                self._generations[(model, name)] = self.missing_data_reason(task)
                continue
            todo.append((task, data))
        if not todo:
            return
        gated = {task.name: cases for task, _ in todo if (cases := self._sequential_cases(model, task.name))}
        # live bases first, one model loaded at a time (_generate skips what a base has generated already)
        for base in sorted({case.base for cases in gated.values() for _, case in cases if case.base}):
            self._generate(base, sorted(self.plan[base]))
        fixed = [(task, data) for task, data in todo if task.name not in gated]
        began = time.perf_counter()
        try:
            self._cpu_threads()
            backend = load_backend(spec, self.settings.cache_dir, self.models)
            self.backend_seconds += time.perf_counter() - began
            try:
                outputs = self._generate_with_store(model, backend, fixed) if fixed else []
                for task, data in todo:
                    if task.name in gated:
                        self._generate_sequential(model, backend, task, data, gated[task.name])
            finally:
                self._backend_info[model] = backend.describe()  # measured at the end: requests, retries, loads
                self._stamp_backend(model)
                self.loads[model] += backend.loads
                began = time.perf_counter()
                backend.close()
                self.backend_seconds += time.perf_counter() - began
        except ClueError as exc:
            prefix = f"model {model!r}: "
            message = str(exc) if str(exc).startswith(prefix) else prefix + str(exc)
            for task, _ in todo:
                self._generations[(model, task.name)] = message
            return
        except Exception as exc:  # an engine failure must not become a bare traceback in every test
            for task, _ in todo:
                self._generations[(model, task.name)] = (
                    f"model {model!r}: generation failed: {type(exc).__name__}: {exc}"
                )
            return
        start = 0
        for task, data in fixed:
            chunk = tuple(outputs[start : start + len(data.scored)])
            start += len(data.scored)
            self._generations[(model, task.name)] = self._systematic_failure(model, task, chunk) or chunk

    def _stamp_backend(self, model: str) -> None:
        """The end-of-run provenance into results the sequential gate built while the model was generating."""
        for key, result in list(self._results.items()):
            if key[0] == model:
                provenance = {**result.provenance, "backend": self._backend_info[model]}
                self._results[key] = replace(result, provenance=provenance)

    def _sequential_cases(self, model: str, task: str) -> list[tuple[str, ModelSpec]]:
        """The selected cases gating `model` on `task` when the sequential gate applies: --clue-sequential, and the
        model is no selected case's live base (that case needs all of its outputs)."""
        if not self.settings.sequential or any(case.base == model for case, _ in self.selected):
            return []
        return [
            (case_id, case)
            for case_id, case in self.cases.items()
            if case.name == model and (case.base or case.baselines) and (case, task) in self.selected
        ]

    def _generate_sequential(
        self, model: str, backend: Backend, task: Task, data: TaskData, cases: list[tuple[str, ModelSpec]]
    ) -> None:
        """Generate the task in chunks of --clue-sequential-look-every units (whole clusters), look at every open
        case after each chunk, and stop when all of them have crossed a boundary or the data ran out."""
        prompts = self._build_prompts(backend, task, data)
        labels = [task.cluster_of(s) for s in data.scored]
        clusters = (
            None if all(c is None for c in labels) else [c or s.id for c, s in zip(labels, data.scored, strict=True)]
        )
        units = len(data.scored) if clusters is None else len(dict.fromkeys(clusters))
        plan = sequential.Plan.make(units, self.settings.sequential_look_every, self.settings.alpha)
        generations: list[Generation] = []
        scores: list[SampleScore] = []
        open_cases = dict(cases)
        result = None
        for index, seen in enumerate(plan.looks):
            upto = sequential.unit_prefix(clusters, len(data.scored), seen)
            new = self._run_prompts(model, backend, prompts[len(generations) : upto])
            scores += self._score(task, data.scored[len(generations) : upto], new)
            generations += new
            result = self._task_result(model, task, data, tuple(scores), tuple(generations))
            for case_id, case in list(open_cases.items()):
                try:
                    reference = self.reference(case, result)
                    assert reference is not None
                    # gated metrics only: the others inform and never stop a case (the test's gate shows them all)
                    metrics = [m for m in metric_scores(result, reference, self.settings) if m.spec.gate]
                    look = sequential.look(plan, index, metrics, gate_config(self.settings), result.clusters())
                except ClueError:  # the case's own gate reports it, on the samples generated so far
                    look = sequential.Look(index + 1, seen, plan.levels[index], None, True, None)
                if look.stop:
                    self.stops[(case_id, task.name)] = SequentialStop(
                        look.index, len(plan.looks), seen, units, upto, len(data.scored), look.level, look.boundary
                    )
                    del open_cases[case_id]
            if not open_cases:
                break
        done = tuple(generations)
        failure = self._systematic_failure(model, task, done)
        self._generations[(model, task.name)] = failure or done
        if result is not None and failure is None:
            self._results[(model, task.name)] = result

    def _systematic_failure(self, model: str, task: Task, generations: tuple[Generation, ...]) -> str | None:
        """An error message when more than --clue-max-failed-share of a model's samples failed: a wrong dtype, a
        replay file with other task names or a bug fails every sample alike, and scoring those as wrong answers
        would turn a broken run into a "regressed" (or, when the base fails, "improved") verdict."""
        failed = [g for g in generations if g.error is not None]
        limit = self.settings.max_failed_share
        if not failed or len(failed) <= limit * len(generations):
            return None
        first = failed[0]
        where = self.shown_id(task.name, first.sample_id)
        error = (first.error or "").replace(first.sample_id, where)
        return (
            f"model {model!r}, {task.name}: {len(failed)} of {len(generations)} generations failed "
            f"({len(failed) / len(generations):.0%} > --clue-max-failed-share {limit:.0%}): a systematic failure, "
            f"not a verdict. First error (sample {where}): {error}"
        )

    def _generate_with_store(self, model: str, backend: Backend, todo: list[tuple[Task, TaskData]]) -> list[Generation]:
        """Prompts of all the model's tasks at once, through the store (StoredRun)."""
        prompts = [p for task, data in todo for p in self._build_prompts(backend, task, data)]
        return self._run_prompts(model, backend, prompts)

    def _build_prompts(self, backend: Backend, task: Task, data: TaskData) -> list[Prompt]:
        """The task's prompts for this model; where the backend allows, token counts come from the store's memo
        (StoredCounter), so a run whose work is all stored loads no tokenizer."""
        if not getattr(backend, "counts_from_store", False):
            return task.build_prompts(data.shots, data.scored, backend.token_counter())
        counter = StoredCounter(self.store, backend.fingerprint(self.store), backend.token_counter)
        prompts = task.build_prompts(data.shots, data.scored, counter)
        counter.flush()
        return prompts

    def _run_prompts(self, model: str, backend: Backend, prompts: list[Prompt]) -> list[Generation]:
        """Generations of `prompts` through the store: stored ones reused, the rest generated and stored."""
        if not prompts:
            return []
        settings = self.generation_settings()
        run = StoredRun.plan(
            self.store,
            model,
            backend.fingerprint(self.store),
            prompts,
            settings,
            per_sample_outputs=backend.per_sample_outputs,
            batch_sensitive=backend.batch_sensitive,
            retry_failures=not self.settings.rescore,  # a rescore scores stored failures as failed
        )
        self.reused[model] += run.reused
        missing = run.missing
        if missing and self.settings.rescore:
            first = prompts[missing[0]]
            shown = self.shown_id(first.task, first.sample_id)  # JUnit carries this message
            raise ClueError(
                f"--clue-rescore: {len(missing)} of {len(set(run.keys))} generations are not in the store "
                f"{self.store.path} (first: {first.task}/{shown}); run once without --clue-rescore to generate them"
            )
        began = time.perf_counter()
        engine = self.models[model].backend

        def report(done: int, total: int, tokens: int) -> None:
            if self.progress is not None:
                self.progress(model, engine, done, total, tokens, time.perf_counter() - began)

        try:
            outputs = run.generate(backend, settings, desc=f"{model}: generating", progress=report)
        finally:
            if missing:
                self.backend_seconds += time.perf_counter() - began
                self.generated[model] += run.generated
        self._record_probe(model, backend)
        return outputs

    def _record_probe(self, model: str, backend: Backend) -> None:
        """The model's weights probe (a backend's optional `probe()`), once per model: from the store where an
        earlier run left it, else computed while the weights are loaded anyway. Never loads weights for it alone."""
        probe = getattr(backend, "probe", None)
        if model in self.probes or probe is None:
            return
        key = memo_key({"weights_probe": PROBE_VERSION}, canonical(backend.fingerprint(self.store)))
        found = self.store.memo_get([key]).get(key)
        if found is None and backend.loads:
            found = probe()
            self.store.memo_put({key: found})
        if found is not None:
            self.probes[model] = str(found)

    def weights_check(self, case: ModelSpec, reference: baseline.Reference | None) -> tuple[str, str | None]:
        """Whether the case's model computes its reference's function (equal weights probes): "identical" with the
        failure message (the adapter or the new weights were not applied), "differs", or "not checked" when either
        probe is unknown (an engine without one, a baseline saved before probes, nothing loaded and none stored)."""
        mine = self.probes.get(case.name)
        theirs = self.probes.get(case.base) if case.base else (reference.probe if reference else None)
        if mine is None or theirs is None:
            return "not checked", None
        if mine != theirs:
            return "differs", None
        what = f"base {case.base!r}" if case.base else f"baseline {reference.label if reference else ''!r}"
        return "identical", (
            f"model {case.name!r} computes the same next-token logits as {what} on {PROBE_COUNT} fixed probe "
            "prompts, bit for bit: the adapter or the new weights change nothing (an untrained adapter, or the "
            "base's weights given twice)"
        )

    # -- references: what a case compares its model with -------------------------------------------------------------
    def prompt_hashes(self, task_name: str) -> dict[str, str]:
        """Sample id -> hash of the prompt the task builds for it, before any model's template or context budget:
        a baseline whose prompts differ measured something else."""
        if task_name not in self._prompt_hashes:
            task = self.task(task_name)
            data = self.data(task)
            assert data is not None
            prompts = task.build_prompts(data.shots, data.scored, None)
            self._prompt_hashes[task_name] = {p.sample_id: baseline.prompt_hash(p) for p in prompts}
        return self._prompt_hashes[task_name]

    def baseline_entry(self, result: TaskResult) -> dict[str, Any]:
        """This run's baseline entry for a result: what --clue-save-baseline writes and a stored one must match."""
        task = self.task(result.task)
        data = self.data(task)
        assert data is not None  # the result exists, so the data did
        protocol = {**task.protocol(), "few_shot_ids": [hash_id(task.name, s.id) for s in data.shots]}
        return baseline.entry(result, protocol=protocol, prompts=self.prompt_hashes(result.task))

    def reference(self, case: ModelSpec, result: TaskResult) -> baseline.Reference | None:
        """What this case compares `result` with: its base model's result (generated in this session) or a stored
        baseline's scores, refused (ClueError naming every difference) when the baseline measured something else.
        None for a reference case."""
        if case.base:
            reference = baseline.Reference.from_result(self.result(case.base, result.task))
            return reference.restrict([s.sample_id for s in result.samples])
        if not case.baselines:
            return None
        ref = baseline.resolve_ref(case.baselines[0], None, self.baseline_files)
        stored = self.baseline_files[ref.path].entry(result.task, ref.model)
        if stored is None:
            raise ClueError(
                f"baseline {ref.path} holds no {result.task} scores for {ref.model!r} (it was saved from a run "
                "without this task; save it again with this task selected)"
            )
        current = self.baseline_entry(result)
        problems = baseline.differences(stored, current)
        if problems:
            raise ClueError(
                f"baseline {ref.path} ({ref.model!r}) does not match this run of {result.task}, so its scores "
                "cannot be compared with this model's:\n  - "
                + "\n  - ".join(problems)
                + "\nSave the baseline again with this clue, data and settings (docs/ci.md: refreshing a baseline)"
            )
        return baseline.reference(stored, current, ref.label, [s.sample_id for s in result.samples])

    # -- scoring ------------------------------------------------------------------------------------------------
    def result(self, model: str, task_name: str) -> TaskResult:
        key = (model, task_name)
        if key not in self._results:
            task = self.task(task_name)
            generations = self.generations(model, task_name)
            if key in self._results:  # a sequential generation scored as it went
                return self._results[key]
            data = self.data(task)
            assert data is not None  # generations() would have raised
            scores = tuple(self._score(task, data.scored, generations))
            self._results[key] = self._task_result(model, task, data, scores, generations)
        return self._results[key]

    def _score(self, task: Task, samples: Sequence[Sample], generations: Sequence[Generation]) -> list[SampleScore]:
        self.scorers.store = self.store  # memoised BERTScore / UMLS values
        self._cpu_threads()  # BERTScore runs on the CPU here
        began = time.perf_counter()
        try:
            scores = task.score_all(samples, generations, self.scorers)
            scores = extra.apply(self.extra_metrics, task.name, samples, generations, scores)
        finally:
            self.scoring_seconds += time.perf_counter() - began
        data = self.data(task)
        if not task.detects_shot_copies or data is None or not data.shots:
            return scores
        return [
            replace(s, flags=(*s.flags, "copies_few_shot")) if task.copies_shot(data.shots, g, s) else s
            for s, g in zip(scores, generations, strict=True)
        ]

    def _task_result(
        self,
        model: str,
        task: Task,
        data: TaskData,
        scores: tuple[SampleScore, ...],
        generations: tuple[Generation, ...],
    ) -> TaskResult:
        return TaskResult(
            task=task.name,
            model=model,
            metrics=task.metrics(self.scorers) + extra.specs(self.extra_metrics, task.name),
            samples=scores,
            generations=generations,
            settings={
                **self.generation_settings().as_dict(),
                "n_shots": task.n_shots,
                "max_new_tokens": task.max_new_tokens,
            },
            provenance=self._provenance(model, task, data),
        )

    def _provenance(self, model: str, task: Task, data: TaskData) -> dict[str, Any]:
        return {
            "clue": __version__,
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "model": self.models[model].describe(),
            "backend": self._backend_info.get(model, {}),
            "data": {
                "path": str(data.path),
                "sha256": data.sha256,
                "records": data.total,
                "few_shot_ids": [self.shown_id(task.name, s.id) for s in data.shots],
                "few_shot_labels": task.shot_balance(data.shots),
                "scored": len(data.scored),
            },
            "weights_probe": self.probes.get(model),
            "seed": self.settings.seed,
            "fewshot_seed": self.settings.fewshot_seed,
            "bootstrap_seed": self.settings.bootstrap_seed,
            "limit": self.settings.limit,
        }
