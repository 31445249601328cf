"""`pytest -n N` (pytest-xdist): one GPU set per worker, each model loaded by one worker, statistics merged.

- GPUs: the controller finds the visible GPUs (`--clue-gpus`, default: CUDA_VISIBLE_DEVICES, else `nvidia-smi`)
  and gives worker i the i-th slice as its CUDA_VISIBLE_DEVICES, before the worker imports torch. More workers
  than GPUs (or fewer GPUs per worker than a model's tensor_parallel_size) is a usage error, not an OOM later.
- Grouping: every clue item gets an `xdist_group` named after the root of its model's base chain, and `-n` runs
  with `--dist loadgroup`, so a model, its base and everything gated against that base run on one worker: each
  model is loaded once per session. (A base shared by many candidates therefore keeps them on one worker; put the
  base's generations in the store first — one plain run — and later runs never load it.)
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

from clue.models import ModelSpec


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
    need = max((m.tensor_parallel_size for m in models.values() if m.backend == "vllm"), default=1)
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


class XdistHooks:
    """Registered by the clue plugin; pytest only calls the hooks xdist defines when xdist is active."""

    def __init__(self, gpus: list[str]):
        self.gpus = gpus
        self.worker_stats: list[dict[str, Any]] = []

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """Controller, per worker: its GPUs travel in workerinput (applied before the worker imports torch)."""
        workers = int(node.workerinput["workercount"])
        index = int(str(node.workerinput["workerid"]).removeprefix("gw"))
        if self.gpus:
            node.workerinput["clue_cuda_visible_devices"] = ",".join(worker_slice(self.gpus, workers, index))
        node.workerinput["clue_threads"] = max(1, (os.cpu_count() or 1) // workers)
        # workers re-parse the command line, so a --dist chosen here must travel explicitly
        node.workerinput["clue_loadgroup"] = node.config.option.dist == "loadgroup"

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        stats = getattr(node, "workeroutput", {}).get("clue")
        if stats:
            self.worker_stats.append(stats)


def configure_worker(config: pytest.Config) -> None:
    """Worker side of pytest_configure: take the GPUs and the CPU thread share the controller assigned."""
    workerinput: dict[str, Any] = getattr(config, "workerinput", {})
    devices = workerinput.get("clue_cuda_visible_devices")
    if devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = devices
    if workerinput.get("clue_loadgroup"):
        config.option.loadgroup = True  # what xdist's worker reads to append the group to each node id
    threads = workerinput.get("clue_threads")
    if threads is not None:
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
