"""`pytest -n N` (pytest-xdist): one GPU set per worker, each model loaded by one worker, statistics merged.

- GPUs: the controller finds the visible GPUs (`--clue-gpus`, default: CUDA_VISIBLE_DEVICES, else `nvidia-smi`)
  and gives worker i the i-th slice as its CUDA_VISIBLE_DEVICES, before the worker imports torch. More workers
  than GPUs (or fewer GPUs per worker than a model's tensor_parallel_size) is a usage error, not an OOM later.
- Grouping: under `-n` (xdist's `load`/`loadgroup` modes) clue supplies the scheduler: every clue item is scheduled
  in the unit named after the root of its model's base chain, so a model, its base and everything gated against
  that base run on one worker: each model is loaded once per session. (A base shared by many candidates therefore
  keeps them on one worker; put the base's generations in the store first — one plain run — and later runs never
  load it.) The scheduler reads the model from the node id's parameter part, on the controller, instead of
  relying on `xdist_group` marks: xdist turns those into node-id suffixes on the workers, which pytest >= 9.2
  silently ignores (pytest-xdist issue #1386), and which break re-running a test by its id (#1119). The override
  of xdist's `_split_scope` is the one private API clue uses; tests/plugin/test_xdist.py holds a strict xfail that
  passes (and so fails the suite) once the public route works, to say when to move to `xdist_group` marks.
- Statistics: each worker sends its model loads, store reuse and backend time to the controller
  (`workeroutput`), which prints and records them with the rest of the results.

The hooks are optional hooks: without xdist installed they are never called.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from typing import Any

import pytest

from clue.models.matrix import ModelSpec
from clue.records import RunStats


def visible_gpus(option: str) -> list[str]:
    """GPU ids this process may hand out: an explicit list, none, or what CUDA_VISIBLE_DEVICES/nvidia-smi show."""
    if option == "none":
        return []
    if option != "auto":
        return [g.strip() for g in option.split(",") if g.strip()]
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def worker_slice(gpus: list[str], workers: int, index: int) -> list[str]:
    per = len(gpus) // workers
    return gpus[index * per : (index + 1) * per]


def check_gpu_split(gpus: list[str], workers: int, models: Mapping[str, ModelSpec]) -> str | None:
    """A usage error message, or None when every worker gets enough GPUs of its own."""
    if not gpus or workers <= 1:
        return None
    per = len(gpus) // workers
    if per == 0:
        return (
            f"pytest -n {workers} with {len(gpus)} GPU(s) ({','.join(gpus)}): each worker needs a GPU of its own; "
            f"use -n {len(gpus)} or fewer, or --clue-gpus none to leave CUDA_VISIBLE_DEVICES alone"
        )
    from clue.backends.vllm import VLLMOptions
    from clue.models.matrix import backend_options

    need = max(
        (backend_options(m, VLLMOptions).tensor_parallel_size for m in models.values() if m.backend == "vllm"),
        default=1,
    )
    if per < need:
        return (
            f"pytest -n {workers} gives each worker {per} GPU(s), but a model needs tensor_parallel_size={need}; "
            f"use -n {len(gpus) // need} or fewer"
        )
    return None


def group_of(models: Mapping[str, ModelSpec], name: str) -> str:
    """The root of the model's base chain: models gated against each other share a worker."""
    seen = {name}
    while (base := models[name].base) is not None and base not in seen:
        seen.add(base)
        name = base
    return f"clue-{name}"


def model_in_nodeid(nodeid: str, cases: Mapping[str, str]) -> str | None:
    """The model a clue item runs, from its node id's test case (`cases`: case id -> its model's name):
    `test_mednli[ft-a]`, `test_mednli[ft-vs-release]` (a stored baseline's case), or `test_x[ft-a-3]` when the
    test has more parameters (pytest joins ids with "-"). The longest matching case id wins, so a case id is never
    mistaken for a model name it contains (`ft-vs-base` runs `ft`, not a model named `base`)."""
    open_at, close_at = nodeid.find("["), nodeid.rfind("]")
    if open_at < 0 or close_at < open_at:
        return None
    ids = nodeid[open_at + 1 : close_at]
    for case in sorted(cases, key=len, reverse=True):
        if ids == case or ids.startswith(case + "-") or ids.endswith("-" + case) or f"-{case}-" in ids:
            return cases[case]
    return None


def make_scheduler(
    config: pytest.Config, log: Any, models: Mapping[str, ModelSpec], cases: Mapping[str, ModelSpec]
) -> Any:
    """xdist's group scheduler, with clue items grouped by the root of their model's base chain (other items keep
    xdist's own rules: an `@group` suffix, else one unit per test)."""
    from xdist.scheduler import LoadGroupScheduling

    case_models = {case: spec.name for case, spec in cases.items()}

    class ModelGroupScheduling(LoadGroupScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            name = model_in_nodeid(nodeid, case_models)
            return group_of(models, name) if name is not None else str(super()._split_scope(nodeid))

    return ModelGroupScheduling(config, log)


class XdistHooks:
    """Registered by the clue plugin; pytest only calls the hooks xdist defines when xdist is active."""

    def __init__(self, gpus: list[str], models: Mapping[str, ModelSpec], cases: Mapping[str, ModelSpec]):
        self.gpus = gpus
        self.models = models
        self.cases = cases
        self.worker_stats: list[RunStats] = []

    @pytest.hookimpl(optionalhook=True, tryfirst=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        """`load` is xdist's default for `-n`: replace it (and `loadgroup`) with the model-grouping scheduler; an
        explicitly chosen other mode (`loadfile`, `each`, ...) is left alone."""
        if config.getvalue("dist") not in ("load", "loadgroup"):
            return None
        return make_scheduler(config, log, self.models, self.cases)

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """Controller, per worker: its GPUs travel in workerinput (applied before the worker imports torch)."""
        workers = int(node.workerinput["workercount"])
        index = int(str(node.workerinput["workerid"]).removeprefix("gw"))
        if self.gpus:
            node.workerinput["clue_cuda_visible_devices"] = ",".join(worker_slice(self.gpus, workers, index))
        node.workerinput["clue_threads"] = max(1, (os.cpu_count() or 1) // workers)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        stats = getattr(node, "workeroutput", {}).get("clue")
        if stats:
            self.worker_stats.append(
                RunStats.from_json(stats, f"xdist worker {node.workerinput.get('workerid', '?')}'s statistics")
            )


def configure_worker(config: pytest.Config) -> None:
    """Worker side of pytest_configure: take the GPUs and the CPU thread share the controller assigned."""
    workerinput: dict[str, Any] = getattr(config, "workerinput", {})
    devices = workerinput.get("clue_cuda_visible_devices")
    if devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = devices
    threads = workerinput.get("clue_threads")
    if threads is not None:
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
