"""The generator: each model's backend driven through the store, one model loaded at a time, all of a model's
selected tasks in one load; a sequential task in chunks, stopping when its cases are decided
(`clue.statistics.sequential.drive`)."""

from __future__ import annotations

import platform
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from clue.backends import load_backend
from clue.backends.base import Backend
from clue.backends.data_use import check_data_use, clearance
from clue.config import Settings, apply_cpu_threads
from clue.errors import ClueError, exception_text
from clue.models.matrix import ModelSpec
from clue.run.catalog import DataCatalog, TaskData
from clue.run.contamination.probing import Probing, TaskProbes
from clue.run.contamination.scores import ProbeScores
from clue.run.phrasings import Phrasings
from clue.run.plan import CasePlan
from clue.run.scoring import Scoring, generation_settings
from clue.run.store_loop import StoredRun, counted
from clue.statistics import sequential
from clue.store.fingerprint import memo_key
from clue.store.sqlite import GenerationStore, canonical
from clue.tasks.base import Task
from clue.types import Generation, Prompt, SampleScore, TaskResult
from clue.util.pseudonyms import shareable_error
from clue.version import __version__

PROBE_VERSION = 1  # of the weights probe: bump when PROBE_PROMPTS or the digest change

# (model, engine, done, total, tokens, seconds): the pytest plugin's progress line
Progress = Callable[[str, str, int, int, int, float], None]
# a sequential case's look at its model's result so far, given its base model's result in this run (None: a stored
# baseline), at look `index` of the plan (ClueError: no comparison can be made yet); the session builds it from the
# references and the gate (clue/run/session.py), neither of which knows the generator
LookAt = Callable[[ModelSpec, TaskResult, TaskResult | None, sequential.Plan, int], sequential.Look]


@dataclass
class GenerationStats:
    """What this process generated, counted as it happens; `ClueSession.stats()` turns the counts into the frozen
    `RunStats` record that xdist workers send and the results hold."""

    loads: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    reused: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    generated: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    backend_seconds: float = 0.0  # constructing backends, loading weights, generating
    contamination_seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))  # task -> seconds


@dataclass(frozen=True)
class Generated:
    """What generating one task with one model produced, everything a case's evaluation reads of it: the
    generations; for a sequential task, where each gated case's gate stopped (`stops`: case id -> Stop, the only
    record of that decision) and the result scored at the last look (`scored`); the model's weights probe (`probe`:
    the digest of its next-token logits on fixed prompts, None when its engine gives none); and the contamination
    diagnostic's scores of the task's probes and of its --clue-contamination-reference items (None: not probed;
    `reference_scores` a string: why the reference file gives none); under --clue-phrasings N, the generations
    under each alternative wording (`worded`: wording id -> generations of the same samples, in order)."""

    generations: tuple[Generation, ...]
    stops: Mapping[str, sequential.Stop] = field(default_factory=dict)
    scored: TaskResult | None = None
    probe: str | None = None
    probe_scores: ProbeScores | None = None
    reference_scores: ProbeScores | str | None = None
    worded: Mapping[str, tuple[Generation, ...]] = field(default_factory=dict)


class Generator:
    """Generations per (model, task), made on first need: stored ones reused, the rest generated and stored."""

    def __init__(self, settings: Settings, plan: CasePlan, catalog: DataCatalog, scoring: Scoring, look: LookAt):
        self.settings = settings
        self.plan = plan
        self.catalog = catalog
        self.scoring = scoring
        self.look = look
        self.stats = GenerationStats()
        self.probes: dict[str, str] = {}  # model -> digest of its next-token logits on fixed prompts
        self.progress: Progress | None = None
        self._outputs: dict[tuple[str, str], Generated | ClueError] = {}
        self.probing = Probing(settings, catalog)  # the contamination diagnostic's scores
        self.phrasings = Phrasings(settings)  # the wordings each task is generated under
        self._worded_results: dict[tuple[str, str], dict[str, TaskResult]] = {}
        self._backend_info: dict[str, dict[str, Any]] = {}
        self._store: GenerationStore | None = None
        self._engines: set[type[Any]] = set()  # backend classes used: their shared engines are released at close

    @property
    def store(self) -> GenerationStore:
        if self._store is None:
            self._store = GenerationStore(self.settings.outputs.cache_dir / "generations.sqlite3")
        return self._store

    def close(self) -> None:
        """Release what the run holds: engines a backend class keeps between models (vLLM's, for LoRA entries on
        one base) and the store's connection."""
        for engine in self._engines:
            release = getattr(engine, "release_engines", None)
            if callable(release):
                release()
        self._engines.clear()
        if self._store is not None:
            self._store.close()
            self._store = None

    def generated(self, model: str, task: str) -> Generated:
        """The model's work on the task, generated on first need (with the model's other selected tasks, in one
        load); ClueError when it could not be generated."""
        if (model, task) not in self._outputs:
            self._generate(model, sorted(self.plan.tasks[model] | {task}))
        entry = self._outputs[(model, task)]
        if isinstance(entry, ClueError):
            raise entry.with_traceback(None)
        return entry

    def generations(self, model: str, task: str) -> tuple[Generation, ...]:
        return self.generated(model, task).generations

    def result(self, model: str, task_name: str) -> TaskResult:
        """The model's scored result on the task (generated first if need be; kept once scored)."""
        key = (model, task_name)
        if key not in self.scoring.results:
            generated = self.generated(model, task_name)
            if generated.scored is not None:  # a sequential task, scored look by look as it was generated
                return generated.scored
            task = self.catalog.task(task_name)
            data = self.catalog.data(task)
            assert data is not None  # generated() would have raised
            provenance = self.provenance_of(model, data)
            self.scoring.score_result(model, task, data, generated.generations, self.store, provenance)
        return self.scoring.results[key]

    def worded_results(self, model: str, task_name: str) -> dict[str, TaskResult]:
        """The model's scored results under each alternative wording (--clue-phrasings), by wording id; empty when
        the run uses the reference wording alone."""
        key = (model, task_name)
        if key not in self._worded_results:
            generated, task = self.generated(model, task_name), self.catalog.task(task_name)
            data = self.catalog.data(task)
            assert data is not None  # generated() would have raised
            provenance = self.provenance_of(model, data)
            self._worded_results[key] = self.scoring.worded(model, task, data, generated.worded, self.store, provenance)
        return self._worded_results[key]

    def _generate(self, model: str, task_names: list[str]) -> None:
        todo: list[tuple[Task, TaskData]] = []
        for name in (n for n in task_names if (model, n) not in self._outputs):
            task = self.catalog.task(name)
            try:
                data = self.catalog.data(task)
            except ClueError as exc:
                self._outputs[(model, name)] = exc
                continue
            if data is None:
                self._outputs[(model, name)] = ClueError(self.catalog.missing_data_reason(task))
                continue
            todo.append((task, data))
        if not todo:
            return
        gated = {task.name: cases for task, _ in todo if (cases := self.plan.sequential_cases(model, task.name))}
        # live bases first, one model loaded at a time (_generate skips what a base has generated already)
        for base in sorted({case.base for cases in gated.values() for case in cases if case.base}):
            self._generate(base, sorted(self.plan.tasks[base]))
        try:
            self._with_backend(model, todo, gated)
        except ClueError as exc:
            prefix = f"model {model!r}: "
            self._fail(model, todo, str(exc) if str(exc).startswith(prefix) else prefix + str(exc))
        except Exception as exc:  # an engine failure must not become a bare traceback in every test
            detail = exception_text(exc, debug=self.settings.outputs.debug)
            self._fail(model, todo, f"model {model!r}: generation failed: {detail}")

    def _fail(self, model: str, todo: list[tuple[Task, TaskData]], message: str) -> None:
        for task, _ in todo:
            self._outputs[(model, task.name)] = ClueError(message)

    def _with_backend(self, model: str, todo: list[tuple[Task, TaskData]], gated: dict[str, list[ModelSpec]]) -> None:
        """Load the model's backend once, generate its fixed tasks in one go, then its sequential ones."""
        began = time.perf_counter()
        apply_cpu_threads(self.settings.generation.cpu_threads)
        # the data-use guard again, for every task this load serves (the plan checked the selection at start-up)
        check_data_use(self.plan.models[model], [task.name for task, _ in todo])
        backend = load_backend(self.plan.models[model], self.settings.outputs.cache_dir, self.plan.models)
        self._engines.add(type(backend))
        self.stats.backend_seconds += time.perf_counter() - began
        unmatched = getattr(backend, "unmatched", None)  # recorded outputs (replay) say which match no sample
        if callable(unmatched):
            for task, data in todo:
                unmatched(task.name, data.sample_ids)
        fixed = [(task, data) for task, data in todo if task.name not in gated]
        probed: dict[str, TaskProbes] = {}
        alternatives: dict[str, dict[str, tuple[Generation, ...]] | ClueError] = {}
        try:
            prompts = [p for task, data in fixed for p in self._build_prompts(backend, task, data)]
            outputs = self._run_prompts(model, backend, prompts)
            for task, data in todo:
                if task.name in gated:
                    self._outputs[(model, task.name)] = generate_sequential(
                        self, model, backend, task, data, gated[task.name]
                    )
            if self.phrasings.active:
                alternatives = self._generate_worded(model, backend, todo)
            if self.plan.probed(model):
                for task, data in todo:
                    if (found := self._score_probes(model, backend, task, data)) is not None:
                        probed[task.name] = found
        finally:
            self._backend_info[model] = backend.describe()  # measured at the end: requests, retries, loads
            self._stamp_scored(model)
            self.stats.loads[model] += backend.loads
            began = time.perf_counter()
            backend.close()
            self.stats.backend_seconds += time.perf_counter() - began
        start = 0
        for task, data in fixed:
            chunk = tuple(outputs[start : start + len(data.scored)])
            start += len(data.scored)
            self._outputs[(model, task.name)] = systematic_failure(
                self.settings, self.catalog, model, task, chunk
            ) or Generated(chunk)
        for task, _ in todo:  # what else the model's load produced: its weights probe, the diagnostic's scores
            entry = self._outputs[(model, task.name)]
            if isinstance(entry, Generated):
                found = probed.get(task.name)
                worded_found = alternatives.get(task.name, {})
                if isinstance(worded_found, ClueError):
                    self._outputs[(model, task.name)] = worded_found
                    continue
                self._outputs[(model, task.name)] = replace(
                    entry,
                    probe=self.probes.get(model),
                    probe_scores=found.scores if found else None,
                    reference_scores=found.reference if found else None,
                    worded=worded_found,
                )

    def _generate_worded(
        self, model: str, backend: Backend, todo: list[tuple[Task, TaskData]]
    ) -> dict[str, dict[str, tuple[Generation, ...]] | ClueError]:
        """Each task's samples under its alternative wordings (--clue-phrasings), in one pass through the store."""
        return self.phrasings.generate(
            [(task, data, self._outputs.get((model, task.name))) for task, data in todo],
            lambda task, data: self._build_prompts(backend, task, data),
            lambda prompts: self._run_prompts(model, backend, prompts),
            lambda task, chunk: systematic_failure(self.settings, self.catalog, model, task, chunk),
        )

    def _stamp_scored(self, model: str) -> None:
        """Results scored look by look while the model generated carry the backend's description as measured at the
        end (requests, retries, loads), like results scored afterwards."""
        backend = dict(self._backend_info[model])
        for key, entry in self._outputs.items():
            if key[0] == model and isinstance(entry, Generated) and entry.scored is not None:
                scored = replace(entry.scored, provenance={**entry.scored.provenance, "backend": backend})
                self._outputs[key] = replace(entry, scored=scored)

    def _build_prompts(self, backend: Backend, task: Task, data: TaskData) -> list[Prompt]:
        """The task's prompts for this model; where the backend allows, token counts come from the store's memo
        (StoredCounter), so a run whose work is all stored loads no tokenizer."""
        return counted(self.store, backend, lambda counter: task.build_prompts(data.shots, data.scored, counter))

    def _score_probes(self, model: str, backend: Backend, task: Task, data: TaskData) -> TaskProbes | None:
        """The model's contamination probe scores, while its backend is loaded anyway (not where its generation
        failed: that error is what the case reports)."""
        if isinstance(self._outputs.get((model, task.name)), ClueError):
            return None
        found = self.probing.score(self.store, model, backend, task, data)
        self.stats.backend_seconds += found.seconds
        self.stats.contamination_seconds[task.name] += found.seconds
        return found

    def _run_prompts(self, model: str, backend: Backend, prompts: list[Prompt]) -> list[Generation]:
        """Generations of `prompts` through the store: stored ones reused, the rest generated and stored."""
        if not prompts:
            return []
        settings = generation_settings(self.settings)
        run = StoredRun.plan(
            self.store,
            model,
            backend.fingerprint(self.store),
            prompts,
            settings,
            per_sample_outputs=backend.per_sample_outputs,
            batch_sensitive=backend.batch_sensitive,
            retry_failures=not self.settings.generation.rescore,  # a rescore scores stored failures as failed
        )
        self.stats.reused[model] += run.reused
        if run.missing and self.settings.generation.rescore:
            first = prompts[run.missing[0]]
            shown = self.catalog.shown_id(first.task, first.sample_id)  # JUnit carries this message
            raise ClueError(
                f"--clue-rescore: {len(run.missing)} of {len(set(run.keys))} generations are not in the store "
                f"{self.store.path} (first: {first.task}/{shown}); run once without --clue-rescore to generate them"
            )
        began = time.perf_counter()
        engine = self.plan.models[model].backend

        def report(done: int, total: int, tokens: int) -> None:
            if self.progress is not None:
                self.progress(model, engine, done, total, tokens, time.perf_counter() - began)

        try:
            outputs = run.generate(backend, settings, desc=f"{model}: generating", progress=report)
        finally:
            if run.missing:
                self.stats.backend_seconds += time.perf_counter() - began
                self.stats.generated[model] += run.generated
        if model not in self.probes and (found := weights_probe(self.store, backend)) is not None:
            self.probes[model] = found
        return outputs

    def provenance_of(self, model: str, data: TaskData) -> dict[str, Any]:
        info = self._backend_info.get(model, {})
        return provenance(self.settings, self.plan.models[model], info, self.probes.get(model), self.catalog, data)


def generate_sequential(
    self: Generator, model: str, backend: Backend, task: Task, data: TaskData, cases: list[ModelSpec]
) -> Generated | ClueError:
    """Generate the task in chunks of --clue-sequential-look-every units (whole clusters), look at every open
    case after each chunk, and stop when all of them have crossed a boundary or the data ran out."""
    prompts = self._build_prompts(backend, task, data)
    labels = [task.cluster_of(s) for s in data.scored]
    clusters = None if all(c is None for c in labels) else [c or s.id for c, s in zip(labels, data.scored, strict=True)]
    units = len(data.scored) if clusters is None else len(dict.fromkeys(clusters))
    plan = sequential.Plan.make(units, self.settings.gate.sequential_look_every, self.settings.gate.alpha)
    generations: list[Generation] = []
    scores: list[SampleScore] = []
    results: list[TaskResult] = []  # the result at the latest look
    by_id = {case.case: case for case in cases}

    def advance(upto: int) -> None:
        new = self._run_prompts(model, backend, prompts[len(generations) : upto])
        scores.extend(self.scoring.score(task, data.scored[len(generations) : upto], new, self.store))
        generations.extend(new)
        results[:] = [self.scoring.task_result(model, task, scores, generations, self.provenance_of(model, data))]

    def judge(case_id: str, index: int, seen: int) -> sequential.Look:
        case = by_id[case_id]
        try:
            base = self.result(case.base, task.name) if case.base else None
            return self.look(case, results[0], base, plan, index)
        except ClueError:  # the case's own gate reports it, on the samples generated so far
            return sequential.Look(index + 1, seen, plan.levels[index], None, True, None)

    stops = sequential.drive(plan, clusters, len(data.scored), list(by_id), advance, judge)
    failure = systematic_failure(self.settings, self.catalog, model, task, tuple(generations))
    return failure or Generated(tuple(generations), stops, results[0])


def weights_probe(store: GenerationStore, backend: Backend) -> str | None:
    """The model's weights probe (a backend's optional `probe()`): from the store where an earlier run left it, else
    computed while the weights are loaded anyway (this entry loaded them, or its engine is up because an entry
    sharing it did: `engine_ready`). Never loads weights for it alone; None when the engine has no probe."""
    probe = getattr(backend, "probe", None)
    if probe is None:
        return None
    key = memo_key({"weights_probe": PROBE_VERSION}, canonical(backend.fingerprint(store)))
    found = store.memo_get([key]).get(key)
    if found is None and (backend.loads or getattr(backend, "engine_ready", False)):
        found = probe()
        store.memo_put({key: found})
    return None if found is None else str(found)


def systematic_failure(
    settings: Settings, catalog: DataCatalog, model: str, task: Task, generations: tuple[Generation, ...]
) -> ClueError | None:
    """An error when more than --clue-max-failed-share of a model's samples failed: a wrong dtype, a replay
    file with other task names or a bug fails every sample alike, and scoring those as wrong answers would turn
    a broken run into a "regressed" (or, when the base fails, "improved") verdict."""
    failed = [g for g in generations if g.error is not None]
    limit = settings.generation.max_failed_share
    if not failed or len(failed) <= limit * len(generations):
        return None
    first = failed[0]
    where = catalog.shown_id(task.name, first.sample_id)
    error = (first.error or "").replace(first.sample_id, where)
    if where != first.sample_id:  # credentialed: the detail a server or an engine added may quote the prompt
        error = shareable_error(error)
    return ClueError(
        f"model {model!r}, {task.name}: {len(failed)} of {len(generations)} generations failed "
        f"({len(failed) / len(generations):.0%} > --clue-max-failed-share {limit:.0%}): a systematic failure, "
        f"not a verdict. First error (sample {where}): {error}"
    )


def provenance(
    settings: Settings,
    spec: ModelSpec,
    backend: dict[str, Any],
    probe: str | None,
    catalog: DataCatalog,
    data: TaskData,
) -> dict[str, Any]:
    """Where a result came from: clue, the platform, the model's entry and engine, the data file and the seeds."""
    task = catalog.task(data.task)
    return {
        "clue": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "model": spec.describe(),
        "backend": backend,
        "data": {
            "path": str(data.path),
            "sha256": data.sha256,
            "records": data.total,
            "few_shot_ids": [catalog.shown_id(task.name, x.id) for x in data.shots],
            "few_shot_labels": task.shot_balance(data.shots),
            "scored": len(data.scored),
        },
        "weights_probe": probe,
        "data_use": clearance(spec, task.name).to_json(),
        "seed": settings.generation.seed,
        "fewshot_seed": settings.data.fewshot_seed,
        "bootstrap_seed": settings.gate.bootstrap_seed,
        "limit": settings.data.limit,
    }
