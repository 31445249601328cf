"""`vllm.platforms.current_platform`: a GPU unless FAKE_VLLM_CPU=1 (the CPU build's platform)."""

from __future__ import annotations

import os


class _Platform:
    def is_cpu(self) -> bool:
        return os.environ.get("FAKE_VLLM_CPU") == "1"


current_platform = _Platform()
