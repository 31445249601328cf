"""The clue pytest plugin (entry point `pytest11: clue`).

It stays inert in a session that collects no clue test: options are registered, nothing is loaded. A clue test
is a function marked `@pytest.mark.clue_task("<task>")` that asks for `clue_model`; the plugin parametrises it
over the model matrix, generates each model's outputs once per session, and `clue_gate` compares the model with
its base model sample by sample.

Its parts, one job each (as pytest-xdist splits its plugin): `main` (the hooks that set a run up and carry its
cases), `fixtures` (what a clue test asks for), `collector` (finished cases to the run's reports), `terminal`
(the progress line and the summary), `state` (what they share), `options` (the option table as pytest options),
`hooks` (the `pytest_clue_*` hook specifications) and `xdist` (workers and GPUs). pytest registers this module, so
the hooks and fixtures are named here.
"""

from clue.plugin.fixtures import (
    ClueInconclusiveWarning,
    clue_gate,
    clue_generations,
    clue_result,
    clue_session,
    clue_task,
)
from clue.plugin.main import (
    pytest_addhooks,
    pytest_addoption,
    pytest_collection_finish,
    pytest_configure,
    pytest_generate_tests,
    pytest_runtest_makereport,
    pytest_unconfigure,
)

__all__ = [
    "ClueInconclusiveWarning",
    "clue_gate",
    "clue_generations",
    "clue_result",
    "clue_session",
    "clue_task",
    "pytest_addhooks",
    "pytest_addoption",
    "pytest_collection_finish",
    "pytest_configure",
    "pytest_generate_tests",
    "pytest_runtest_makereport",
    "pytest_unconfigure",
]
