"""Stored baselines: a model's per-sample scores, saved by one run (`--clue-save-baseline FILE`) and gated against by
later runs (`--clue-baseline FILE`) without loading or generating that model.

A baseline holds no text: sample ids, prompts and outputs are hashed, so it can be committed next to the code it
gates (MIMIC-derived outputs may echo patient text). It also holds what made those scores: the data file's hash,
the task's protocol, the decoding settings and every metric's fingerprint. A run that would measure something else
(other data, prompts, decoding or metric models, samples the baseline never scored) is refused with every
difference named: a gate against scores of another measurement gives a confident, wrong verdict.

The file is JSON with one sample per line and entries in (task, model) order, so a refreshed baseline diffs
readably in review.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from clue.errors import ConfigError
from clue.records import (
    BaselineEntry,
    BaselinePhrasing,
    BaselineProbes,
    BaselineSample,
    RecordError,
    name_in_message,
)
from clue.types import MetricSpec, Prompt, TaskResult
from clue.util import strict_json
from clue.util.files import SHARED, atomic_write
from clue.util.pseudonyms import hash_id, hash_text
from clue.util.strict_json import JSONProblem
from clue.version import __version__

FORMAT = 2  # 2: each entry carries the digest of its content
KIND = "clue-baseline"
_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def output_hash(task: str, text: str) -> str:
    return hash_text("output", task, text)


def prompt_hash(prompt: Prompt) -> str:
    """The prompt as the task built it, before any model's chat template or context budget."""
    payload = json.dumps([[m.role, m.content] for m in prompt.messages] + [prompt.max_new_tokens])
    return hash_text("prompt", prompt.task, payload)


@dataclass(frozen=True)
class Reference:
    """What the gate compares a model with, sample by sample: a base model run in this session or a stored
    baseline. `outputs` are output hashes (None where the generation failed)."""

    label: str
    kind: Literal["model", "baseline"]
    sample_ids: tuple[str, ...]
    scores: tuple[Mapping[str, float], ...]
    outputs: tuple[str | None, ...]
    probe: str | None = None  # a stored baseline's weights probe (session.same_weights), where it was recorded
    contamination: BaselineProbes | None = None  # a stored baseline's side of the contamination diagnostic
    contamination_reference: BaselineProbes | None = None  # likewise, of --clue-contamination-reference items

    @property
    def failed(self) -> int:
        return sum(o is None for o in self.outputs)

    def values(self, metric: str) -> list[float]:
        return [float(s[metric]) for s in self.scores]

    def restrict(self, sample_ids: Sequence[str]) -> Reference:
        """The reference on these samples, in this order (a subset: a sequential case's samples so far)."""
        if list(sample_ids) == list(self.sample_ids):
            return self
        where = {sample_id: i for i, sample_id in enumerate(self.sample_ids)}
        rows = [where[s] for s in sample_ids if s in where]
        return Reference(
            self.label,
            self.kind,
            tuple(self.sample_ids[i] for i in rows),
            tuple(self.scores[i] for i in rows),
            tuple(self.outputs[i] for i in rows),
            self.probe,
            self.contamination,
            self.contamination_reference,
        )

    @classmethod
    def from_result(cls, result: TaskResult) -> Reference:
        return cls(
            result.model,
            "model",
            tuple(s.sample_id for s in result.samples),
            tuple(s.scores for s in result.samples),
            output_hashes(result),
        )


def output_hashes(result: TaskResult) -> tuple[str | None, ...]:
    return tuple(None if g.error is not None else output_hash(result.task, g.text) for g in result.generations)


def entry(
    result: TaskResult,
    *,
    protocol: Mapping[str, Any],
    prompts: Mapping[str, str],
    worded: Sequence[tuple[str, str, TaskResult]] = (),
) -> BaselineEntry:
    """A model's baseline entry for one task: what was measured and the per-sample scores, without any text.
    `protocol` is the task's protocol with the few-shot examples; `prompts` maps sample ids to prompt hashes."""
    provenance = result.provenance
    data = provenance.get("data", {})
    settings = result.settings
    return BaselineEntry(
        task=result.task,
        model=result.model,
        clue=__version__,
        protocol=dict(protocol),
        data={"sha256": data.get("sha256"), "records": data.get("records")},
        decoding={key: settings.get(key) for key in ("temperature", "top_p", "seed")},
        metrics={
            m.name: {
                "kind": m.kind,
                "higher_is_better": m.higher_is_better,
                "fingerprint": dict(m.fingerprint),
                "bounds": list(m.bounds) if m.bounds is not None else None,
            }
            for m in result.metrics
        },
        model_fingerprint={"model": provenance.get("model", {}), "backend": provenance.get("backend", {})},
        weights_probe=provenance.get("weights_probe"),
        n=result.n,
        samples=_rows(result, prompts),
        phrasings=tuple(BaselinePhrasing(wording, digest, _rows(scored, {})) for wording, digest, scored in worded),
    )


def _rows(result: TaskResult, prompts: Mapping[str, str]) -> tuple[BaselineSample, ...]:
    return tuple(
        BaselineSample(
            id=hash_id(result.task, s.sample_id),
            prompt=prompts.get(s.sample_id),
            output=output,
            cluster=None if s.cluster is None else hash_id(result.task, str(s.cluster)),
            scores=dict(s.scores),
        )
        for s, output in zip(result.samples, output_hashes(result), strict=True)
    )


def worded_reference(
    stored: BaselineEntry, wording: str, digest: str, label: str, current: BaselineEntry, run_ids: Sequence[str]
) -> Reference:
    """The stored scores under one alternative wording, of this run's samples in this run's order; ConfigError when
    the baseline holds none under that wording or holds another text under its id."""
    found = next((p for p in stored.phrasings if p.wording == wording), None)
    if found is None:
        held = ", ".join(p.wording for p in stored.phrasings) or "none"
        raise ConfigError(
            f"baseline {label!r} ({stored.task}) holds no scores under the wording {wording!r} (it holds: {held}); "
            "save it again with this --clue-phrasings"
        )
    if found.digest != digest:
        raise ConfigError(
            f"baseline {label!r} ({stored.task}): the wording {wording!r} had another text when it was saved "
            f"(hash {found.digest}, now {digest}); save the baseline again"
        )
    by_id = {s.id: s for s in found.samples}
    missing = [s for s in current.samples if s.id not in by_id]
    if missing:
        raise ConfigError(
            f"baseline {label!r} ({stored.task}): {len(missing)} of this run's {len(current.samples)} samples have "
            f"no score under the wording {wording!r}"
        )
    rows = [by_id[s.id] for s in current.samples]
    return Reference(
        label, "baseline", tuple(run_ids), tuple(dict(r.scores) for r in rows), tuple(r.output for r in rows)
    )


def differences(stored: BaselineEntry, current: BaselineEntry) -> list[str]:
    """Everything that makes a stored entry measure something other than this run would (empty: it matches)."""
    out: list[str] = []
    if stored.data.get("sha256") != current.data.get("sha256"):
        out.append(
            f"data: the file's sha256 is {_short(stored.data.get('sha256'))} in the baseline, "
            f"{_short(current.data.get('sha256'))} now"
        )
    out += _protocol_differences(stored.protocol, current.protocol)
    sampling = any(float(d.get("temperature") or 0) > 0 for d in (stored.decoding, current.decoding))
    for key in ("temperature", "top_p", "seed") if sampling else ("temperature",):
        was, now = stored.decoding.get(key), current.decoding.get(key)
        if was != now:
            out.append(f"decoding: {key} is {was!r} in the baseline, {now!r} now")
    for name, spec in current.metrics.items():
        old = stored.metrics.get(name)
        if old is None:
            out.append(f"metric {name}: not in the baseline (it has {', '.join(sorted(stored.metrics)) or 'none'})")
        elif old != spec:
            keys = [k for k in ("kind", "higher_is_better", "fingerprint", "bounds") if old.get(k) != spec.get(k)]
            detail = "; ".join(f"{k} {old.get(k)!r} in the baseline, {spec.get(k)!r} now" for k in keys)
            out.append(f"metric {name}: {detail}")
    return out + _sample_differences(stored, current)


def _protocol_differences(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    out = []
    for key in sorted(set(stored) | set(current)):
        was, now = stored.get(key), current.get(key)
        if was == now:
            continue
        if key == "few_shot_ids":
            changed = len(set(now or ()) - set(was or ())) or len(now or ())
            out.append(f"protocol: {changed} of the {len(now or ())} few-shot examples differ (few-shot seed?)")
        else:
            out.append(f"protocol: {key} is {was!r} in the baseline, {now!r} now")
    return out


def _sample_differences(stored: BaselineEntry, current: BaselineEntry) -> list[str]:
    out = []
    by_id = {s.id: s for s in stored.samples}
    missing = [s for s in current.samples if s.id not in by_id]
    if missing:
        out.append(
            f"samples: {len(missing)} of this run's {len(current.samples)} samples are not in the baseline, which "
            f"holds {len(by_id)} (saved with --clue-limit, or from other data?)"
        )
    shared = [s for s in current.samples if s.id in by_id]
    changed_prompts = sum(by_id[s.id].prompt != s.prompt for s in shared)
    if changed_prompts:
        out.append(
            f"prompts: {changed_prompts} of {len(shared)} samples' prompts differ from the baseline's (a changed "
            "template, few-shot examples or documents)"
        )
    return out


def reference(stored: BaselineEntry, current: BaselineEntry, label: str, run_ids: Sequence[str]) -> Reference:
    """The stored scores and output hashes of this run's samples, in this run's order (`run_ids`: the raw ids of
    `current`'s samples; the baseline knows only their hashes). Call after `differences` came back empty."""
    by_id = {s.id: s for s in stored.samples}
    rows = [by_id[s.id] for s in current.samples]
    return Reference(
        label,
        "baseline",
        tuple(run_ids),
        tuple(dict(r.scores) for r in rows),
        tuple(r.output for r in rows),
        stored.weights_probe,
        stored.contamination,
        stored.contamination_reference,
    )


def _short(digest: object) -> str:
    return f"{str(digest)[:12]}…" if digest else "unknown"


# -- files ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BaselineFile:
    path: Path
    entries: Mapping[tuple[str, str], BaselineEntry]  # (task, model) -> entry

    @property
    def models(self) -> list[str]:
        return sorted({model for _, model in self.entries})

    def entry(self, task: str, model: str) -> BaselineEntry | None:
        return self.entries.get((task, model))


def digest(entry_json: Mapping[str, Any]) -> str:
    """The digest of an entry's content (everything but the digest itself), written when the entry is saved: an
    entry edited by hand or damaged afterwards no longer matches it. It detects accidents and edits, not someone
    who recomputes it: the committed file's review protects against that."""
    content = {key: value for key, value in entry_json.items() if key != "digest"}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def load(path: Path) -> BaselineFile:
    """Read and check a baseline file; every problem is a ConfigError naming the file and the entry (and the
    sample, by its hashed id): an edited entry (its digest), a sample listed twice, a score that is not finite or
    outside its metric's range, a sample without a score of every metric."""
    where = f"baseline {path}"
    if not path.is_file():
        raise ConfigError(f"{where}: no such file (write one with --clue-save-baseline {path})")
    try:
        data = strict_json.parse(strict_json.read_text(path), name_keys=True)  # a baseline holds no text
    except JSONProblem as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if not isinstance(data, dict) or data.get("kind") != KIND:
        raise ConfigError(f"{where}: not a clue baseline (written by --clue-save-baseline)")
    if data.get("format") != FORMAT:
        raise ConfigError(
            f"{where}: format {data.get('format')!r}; this clue (version {__version__}) reads format {FORMAT}: "
            "save the baseline again"
        )
    items = data.get("entries")
    if not isinstance(items, list):
        raise ConfigError(f"{where}: 'entries' is not a list")
    entries: dict[tuple[str, str], BaselineEntry] = {}
    for index, item in enumerate(items):
        try:
            parsed = BaselineEntry.from_json(item, f"{where}, entry {index}")
        except RecordError as exc:
            raise ConfigError(str(exc)) from None
        here = f"{where}, entry {index} ({name_in_message(parsed.task)}/{name_in_message(parsed.model)})"
        if item.get("digest") != digest(item):
            raise ConfigError(
                f"{here}: its content does not match the digest written when it was saved (edited by hand, merged "
                "or damaged?): save the baseline again with --clue-save-baseline"
            )
        _check_samples(parsed, here)
        if (parsed.task, parsed.model) in entries:
            raise ConfigError(f"{here}: listed twice")
        entries[(parsed.task, parsed.model)] = parsed
    if not entries:
        raise ConfigError(f"{where}: holds no entries")
    return BaselineFile(path, entries)


def _check_samples(entry: BaselineEntry, where: str) -> None:
    """Each sample once, with a valid score of every metric the entry declares."""
    specs = {}
    for name, table in entry.metrics.items():
        bounds = table.get("bounds") if isinstance(table, Mapping) else None
        kind = table.get("kind") if isinstance(table, Mapping) else None
        if kind not in ("binary", "continuous") or not (
            bounds is None or (isinstance(bounds, list) and len(bounds) == 2 and all(_number(b) for b in bounds))
        ):
            raise ConfigError(
                f"{where}, metric {name_in_message(name)}: needs a kind (binary or continuous) and bounds [low, high]"
            )
        specs[name] = MetricSpec(name, "", kind=kind, bounds=None if bounds is None else (bounds[0], bounds[1]))
    if entry.n is not None and entry.n != len(entry.samples):
        raise ConfigError(f"{where}: holds {len(entry.samples)} samples, but was saved with n = {entry.n}")
    _check_rows(entry.samples, specs, where)
    wordings: set[str] = set()
    for phrasing in entry.phrasings:
        here = f"{where}, wording {name_in_message(phrasing.wording)}"
        if phrasing.wording in wordings:
            raise ConfigError(f"{here}: listed twice")
        wordings.add(phrasing.wording)
        _check_rows(phrasing.samples, specs, here)


def _check_rows(samples: Sequence[BaselineSample], specs: Mapping[str, MetricSpec], where: str) -> None:
    seen: set[str] = set()
    for sample in samples:
        if sample.id in seen:
            raise ConfigError(f"{where}, sample {name_in_message(sample.id)}: listed twice")
        seen.add(sample.id)
        here = f"{where}, sample {name_in_message(sample.id)}"
        for name, spec in specs.items():
            if name not in sample.scores:
                raise ConfigError(f"{here}: no score for metric {name_in_message(name)}")
            problem = spec.score_problem(sample.scores[name])
            if problem:
                raise ConfigError(f"{here}, metric {name_in_message(name)}: the score is {problem}")


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def write(path: Path, entries: Sequence[BaselineEntry]) -> Path:
    """Write the entries sorted by (task, model), one sample per line, keys sorted: a stable, diffable file. Each
    entry carries the digest of its content."""
    ordered = sorted(entries, key=lambda e: (e.task, e.model))
    marked: list[dict[str, Any]] = []
    lines: dict[str, str] = {}
    for e in ordered:
        rows = []
        for sample in e.samples:
            mark = f"@@sample{len(lines)}@@"
            lines[f'"{mark}"'] = json.dumps(sample.to_json(), sort_keys=True, separators=(", ", ": "), allow_nan=False)
            rows.append(mark)
        content = e.to_json()
        marked.append({**content, "digest": digest(content), "samples": rows})
    document = {"kind": KIND, "format": FORMAT, "clue": __version__, "entries": marked}
    text = json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False, allow_nan=False)
    text = re.sub(r'"@@sample\d+@@"', lambda m: lines[m.group(0)], text)
    return atomic_write(path, (text + "\n").encode(), SHARED)


# -- naming a baseline ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BaselineRef:
    """One baseline a model is gated against: the file, the model in it, and the label its test case carries."""

    path: Path
    model: str
    label: str

    @property
    def spec(self) -> str:
        return f"{self.path}#{self.model}" + (f"={self.label}" if self.label != self.model else "")


def split_spec(text: str) -> tuple[str, str | None]:
    """`FILE[#MODEL][=LABEL]` -> (file, model or None)."""
    file, sep, model = split_label(text)[0].rpartition("#")
    if sep and file and _MODEL.fullmatch(model):
        return file, model
    return split_label(text)[0], None


def split_label(text: str) -> tuple[str, str | None]:
    """`SPEC=LABEL` -> (spec, label); the label names the baseline's test case (`<model>-vs-<label>`)."""
    spec, sep, label = text.rpartition("=")
    if sep and spec and _MODEL.fullmatch(label):
        return spec, label
    return text, None


def absolute_spec(text: str, base: Path, where: str) -> str:
    """`FILE[#MODEL][=LABEL]` with FILE made absolute against `base` (the matrix file's folder, or where the option
    was given); a ConfigError naming `where` when there is no such file."""
    file, model = split_spec(text.strip())
    label = split_label(text.strip())[1]
    path = (base / file).resolve()
    if not path.is_file():
        raise ConfigError(f"{where}: baseline {file!r}: no such file (write one with --clue-save-baseline FILE)")
    return (f"{path}#{model}" if model else str(path)) + (f"={label}" if label else "")


def resolve_ref(text: str, base_name: str | None, files: Mapping[Path, BaselineFile]) -> BaselineRef:
    """Which model of a loaded baseline file `text` (an absolute `FILE[#MODEL]`) names: the one given, the file's
    only model, or the gated model's base model by name."""
    file, model = split_spec(text)
    label = split_label(text)[1]
    path = Path(file)
    baseline = files[path]
    where = f"baseline {path}"
    if model is not None:
        if model not in baseline.models:
            raise ConfigError(f"{where}: holds no model {model!r}; it holds {', '.join(baseline.models)}")
    elif len(baseline.models) == 1:
        model = baseline.models[0]
    elif base_name in baseline.models:
        model = base_name
    else:
        raise ConfigError(
            f"{where} holds the models {', '.join(baseline.models)}: name one as {path}#MODEL"
            + (f" (none is named like the base model {base_name!r})" if base_name else "")
        )
    # the case id is "<model>-vs-<label>": the recorded model's name unless one is given, never the file's name,
    # which `-k` would match (`-k mednli` selected every task of a baseline file called "...-mednli16.json")
    return BaselineRef(path, model, label or model)
