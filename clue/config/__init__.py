"""clue's run configuration: one pure Settings object, built from layers of sources (the command line, ini options
and `[tool.clue]` for the pytest plugin; `clue.evaluate()`'s arguments and `[tool.clue]` for Python).

One place per option: each option is one field of a frozen section of `Settings`, declared in `sections`; `table`
collects them into `OPTIONS`, the one option table; `layers` reads each layer's raw values into `Settings`.
"""

from clue.config.layers import Layer, settings_from, tool_clue
from clue.config.sections import (
    BERTSCORE_DEFAULT_MODEL,
    SECTIONS,
    DataOptions,
    GateOptions,
    GenerationOptions,
    ModelOptions,
    OutputOptions,
    ScoringOptions,
    Settings,
    apply_cpu_threads,
    data_files,
    default_cpu_threads,
)
from clue.config.table import OPTIONS, Option, collect_options, section_types

__all__ = [
    "BERTSCORE_DEFAULT_MODEL",
    "OPTIONS",
    "SECTIONS",
    "DataOptions",
    "GateOptions",
    "GenerationOptions",
    "Layer",
    "ModelOptions",
    "Option",
    "OutputOptions",
    "ScoringOptions",
    "Settings",
    "apply_cpu_threads",
    "collect_options",
    "data_files",
    "default_cpu_threads",
    "section_types",
    "settings_from",
    "tool_clue",
]
