from __future__ import annotations

import vllm


def destroy_model_parallel() -> None:
    for engine in vllm.CREATED:
        engine.alive = False
    vllm.RELEASED.count += 1


def destroy_distributed_environment() -> None:
    vllm.RELEASED.log.append("distributed")
