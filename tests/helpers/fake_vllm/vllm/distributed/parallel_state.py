from __future__ import annotations

import vllm


def destroy_model_parallel() -> None:
    # as in vLLM v1: tears down the parallel groups of this process; the EngineCore process lives on
    vllm.RELEASED.count += 1


def destroy_distributed_environment() -> None:
    vllm.RELEASED.log.append("distributed")
