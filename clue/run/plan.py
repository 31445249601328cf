"""The case plan: which models a run has, the test cases they make (a model and what it is compared with), and
which (case, task) pairs the selected tests need."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

from clue import baseline
from clue.backends import check_entry
from clue.backends.data_use import check_data_use
from clue.config import Settings
from clue.errors import ConfigError
from clue.models.matrix import ModelSpec, load_matrix, pair_from_cli


class CasePlan:
    """Models and cases from the settings (read and checked once), and what the selected tests need of them."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._models: dict[str, ModelSpec] | None = None
        self._cases: dict[str, ModelSpec] | None = None
        self._baseline_files: dict[Path, baseline.BaselineFile] | None = None
        self.selected: set[tuple[ModelSpec, str]] = set()  # (case, task) of every selected test
        self.tasks: dict[str, set[str]] = defaultdict(set)  # model -> the tasks its outputs are needed for

    @property
    def models(self) -> dict[str, ModelSpec]:
        if self._models is None:
            self._models = self._read_models()
        return self._models

    def _read_models(self) -> dict[str, ModelSpec]:
        s = self.settings.models
        if s.model:
            extra: dict[str, Any] = {"dtype": s.dtype}
            if s.chat_template:
                extra["chat_template"] = s.chat_template
            if s.max_model_len:
                extra["max_model_len"] = s.max_model_len
            return pair_from_cli(s.model, s.base_model, **extra)
        if s.base_model:
            raise ConfigError("--clue-base-model needs --clue-model (the model to compare with it)")
        if s.matrix:
            return load_matrix(s.matrix)
        raise ConfigError(
            "no models to evaluate: pass --clue-model PATH_OR_ID [--clue-base-model PATH_OR_ID], "
            'or --clue-matrix FILE, or set matrix = "..." under [tool.clue] in pyproject.toml'
        )

    @property
    def cases(self) -> dict[str, ModelSpec]:
        """Test id -> the model's entry narrowed to the one thing its case compares it with: its base model
        (`base` set, id = the model's name), one stored baseline (`baselines` holds that one, id
        "<model>-vs-<baseline label>"), or nothing (a reference case, id = the model's name). Each view carries its
        id (`case`), so a test's parameter says which case it is. --clue-baseline applies to every model that is no
        other model's base."""
        if self._cases is None:
            cases: dict[str, ModelSpec] = {}
            bases = {m.base for m in self.models.values() if m.base}
            for name, spec in self.models.items():
                for case_id, view in self._views(name, spec, name in bases):
                    if case_id in cases:
                        raise ConfigError(f"two test cases would be named {case_id!r}: rename a model or baseline")
                    cases[case_id] = replace(view, case=case_id)
            self._cases = cases
        return self._cases

    def _views(self, name: str, spec: ModelSpec, is_base: bool) -> list[tuple[str, ModelSpec]]:
        named = list(dict.fromkeys([*spec.baselines, *(self.settings.gate.baseline if not is_base else ())]))
        refs = [baseline.resolve_ref(text, spec.base, self.baseline_files) for text in named]
        labels = [r.label for r in refs]
        if len(set(labels)) < len(labels):
            raise ConfigError(
                f"model {name!r}: two baselines are labelled alike ({', '.join(labels)}); name them "
                "FILE#MODEL=LABEL (the label names the test case, <model>-vs-<label>)"
            )
        views = [(name, replace(spec, baselines=()))] if spec.base or not refs else []
        return views + [(f"{name}-vs-{r.label}", replace(spec, base=None, baselines=(r.spec,))) for r in refs]

    def check_models(self) -> None:
        """Every entry's start-up checks (a GGUF header, an adapter's config, rank and base model, option
        combinations an engine refuses): a configuration error once, before any test, not at every case's setup."""
        for spec in self.models.values():
            check_entry(spec)

    def check_data_use(self) -> None:
        """Start-up, once the selected tests are known: every model may be sent the credentialed tasks it will
        generate (its own cases' and, as a base, its candidates'), before anything loads or connects."""
        for model, tasks in self.tasks.items():
            check_data_use(self.models[model], tasks)

    @property
    def baseline_files(self) -> dict[Path, baseline.BaselineFile]:
        """Every baseline file the run names, read and checked once."""
        if self._baseline_files is None:
            named = [*self.settings.gate.baseline, *(b for m in self.models.values() for b in m.baselines)]
            paths = dict.fromkeys(Path(baseline.split_spec(text)[0]) for text in named)
            self._baseline_files = {path: baseline.load(path) for path in paths}
        return self._baseline_files

    def need(self, case: ModelSpec, task: str) -> None:
        """Called for each selected item with its case: the model's outputs for this task will be needed, and its
        base model's when the case compares with one (a stored baseline needs no generation)."""
        self.tasks[case.name].add(task)
        self.selected.add((case, task))
        if case.base:
            self.tasks[case.base].add(task)

    def probed(self, model: str) -> bool:
        """Whether the contamination diagnostic needs `model`'s probe scores: it is a selected gated case's model
        or base, or the run saves a baseline (whose entries carry the base side for a later run)."""
        if self.settings.gate.contamination == "off":
            return False
        if self.settings.outputs.save_baseline is not None:
            return True
        return any(
            case.base == model or (case.name == model and (case.base or case.baselines)) for case, _ in self.selected
        )

    def sequential_cases(self, model: str, task: str) -> list[ModelSpec]:
        """The selected cases gating `model` on `task` when the sequential gate applies: --clue-sequential, and the
        model is no selected case's live base (that case needs all of its outputs)."""
        if not self.settings.gate.sequential or any(case.base == model for case, _ in self.selected):
            return []
        return [
            case
            for case in self.cases.values()
            if case.name == model and (case.base or case.baselines) and (case, task) in self.selected
        ]
