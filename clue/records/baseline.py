"""A stored baseline's entry (`BaselineEntry`): per-sample scores and probe scores under hashed ids, no text."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from clue.records.reading import JSON, RecordError, _finite, _get, _scores, name_in_message


@dataclass(frozen=True)
class BaselineSample:
    """One sample of a stored baseline: hashed ids and hashes only, never text."""

    id: str
    scores: Mapping[str, float]
    prompt: str | None = None  # hash of the prompt the task built
    output: str | None = None  # hash of the output (None: the generation failed)
    cluster: str | None = None

    def to_json(self) -> dict[str, JSON]:
        return {
            "id": self.id,
            "prompt": self.prompt,
            "output": self.output,
            "cluster": self.cluster,
            "scores": dict(self.scores),
        }

    @classmethod
    def from_json(cls, data: JSON, where: str) -> BaselineSample:
        if not isinstance(data, Mapping) or "id" not in data or not isinstance(data.get("scores"), Mapping):
            raise RecordError(f"{where}: every sample needs an id and a scores table")
        here = f"{where}, sample {name_in_message(data['id'])}"
        return cls(
            id=str(data["id"]),
            scores=_scores(data, here),
            prompt=_get(data, "prompt", str, here, optional=True),
            output=_get(data, "output", str, here, optional=True),
            cluster=_get(data, "cluster", str, here, optional=True),
        )


@dataclass(frozen=True)
class BaselineProbes:
    """The base side of the contamination diagnostic in a stored baseline: the probes' settings and, per hashed
    sample id, the probe's digest and the log-probabilities per token of the reference answer and its neighbours."""

    settings: Mapping[str, JSON]
    items: Mapping[str, tuple[str, tuple[float, ...]]]

    def to_json(self) -> dict[str, JSON]:
        return {
            "settings": dict(self.settings),
            "items": [{"id": hid, "digest": d, "logprobs": list(v)} for hid, (d, v) in self.items.items()],
        }

    @classmethod
    def from_json(cls, data: JSON, where: str) -> BaselineProbes | None:
        """Checked like the scores: a value that is not a finite number, an item without neighbours or listed
        twice is refused (an edited or damaged baseline)."""
        if data is None:
            return None
        settings = _get(data, "settings", dict, where)
        items: dict[str, tuple[str, tuple[float, ...]]] = {}
        for i, item in enumerate(_get(data, "items", list, where)):
            here = f"{where}, items[{i}]"
            hid, digest = _get(item, "id", str, here), _get(item, "digest", str, here)
            values = _get(item, "logprobs", list, here)
            if len(values) < 2 or not all(_finite(v) and v <= 0 for v in values):
                raise RecordError(f"{here}: logprobs must be two or more finite numbers <= 0")
            if hid in items:
                raise RecordError(f"{here}: sample {name_in_message(hid)} is listed twice")
            items[hid] = (digest, tuple(float(v) for v in values))
        return cls(settings, items)


@dataclass(frozen=True)
class BaselinePhrasing:
    """A stored baseline's scores under one alternative wording (--clue-phrasings): the wording's id and the hash
    of its text, so that a later run gates only against scores of the same instruction."""

    wording: str
    digest: str
    samples: tuple[BaselineSample, ...]

    def to_json(self) -> dict[str, JSON]:
        return {"wording": self.wording, "digest": self.digest, "samples": [s.to_json() for s in self.samples]}

    @classmethod
    def from_json(cls, data: JSON, where: str) -> BaselinePhrasing:
        wording = _get(data, "wording", str, where)
        here = f"{where} ({name_in_message(wording)})"
        samples = _get(data, "samples", list, here)
        return cls(wording, _get(data, "digest", str, here), tuple(BaselineSample.from_json(s, here) for s in samples))


@dataclass(frozen=True)
class BaselineEntry:
    """A model's stored scores on one task (--clue-save-baseline) and everything that decides whether they can be
    compared with a later run: the data's hash, the task's protocol, the decoding, the metrics' definitions."""

    task: str
    model: str
    protocol: Mapping[str, JSON]
    data: Mapping[str, JSON]
    decoding: Mapping[str, JSON]
    metrics: Mapping[str, Mapping[str, JSON]]  # name -> kind, higher_is_better, fingerprint
    samples: tuple[BaselineSample, ...]
    clue: str | None = None  # the version that saved it
    model_fingerprint: Mapping[str, JSON] = field(default_factory=dict)
    weights_probe: str | None = None
    n: int | None = None
    contamination: BaselineProbes | None = None  # the base side of the contamination diagnostic
    contamination_reference: BaselineProbes | None = None  # likewise, of the --clue-contamination-reference items
    phrasings: tuple[BaselinePhrasing, ...] = ()  # the scores under each alternative wording (--clue-phrasings)

    KEYS = ("task", "model", "protocol", "data", "decoding", "metrics", "samples")

    def to_json(self) -> dict[str, JSON]:
        return {
            "task": self.task,
            "model": self.model,
            "clue": self.clue,
            "protocol": dict(self.protocol),
            "data": dict(self.data),
            "decoding": dict(self.decoding),
            "metrics": {name: dict(m) for name, m in self.metrics.items()},
            "model_fingerprint": dict(self.model_fingerprint),
            "weights_probe": self.weights_probe,
            "n": self.n,
            "contamination": self.contamination.to_json() if self.contamination else None,
            "contamination_reference": (
                self.contamination_reference.to_json() if self.contamination_reference else None
            ),
            "samples": [s.to_json() for s in self.samples],
            **({"phrasings": [p.to_json() for p in self.phrasings]} if self.phrasings else {}),
        }

    @classmethod
    def from_json(cls, data: JSON, where: str) -> BaselineEntry:
        if not isinstance(data, Mapping) or any(k not in data for k in cls.KEYS):
            raise RecordError(f"{where}: needs the keys {', '.join(cls.KEYS)}")
        task, model = name_in_message(data["task"]), name_in_message(data["model"])
        here = f"{where.rpartition(', entry ')[0] or where}, entry {task}/{model}"
        samples = data["samples"]
        if not isinstance(samples, list):
            raise RecordError(f"{here}: every sample needs an id and a scores table")
        tables = {key: _get(data, key, dict, here) for key in ("protocol", "data", "decoding", "metrics")}
        return cls(
            task=str(data["task"]),
            model=str(data["model"]),
            protocol=tables["protocol"],
            data=tables["data"],
            decoding=tables["decoding"],
            metrics=tables["metrics"],
            samples=tuple(BaselineSample.from_json(s, here) for s in samples),
            clue=_get(data, "clue", str, here, optional=True),
            model_fingerprint=_get(data, "model_fingerprint", dict, here, optional=True) or {},
            weights_probe=_get(data, "weights_probe", str, here, optional=True),
            n=_get(data, "n", int, here, optional=True),
            contamination=BaselineProbes.from_json(data.get("contamination"), f"{here}, contamination"),
            contamination_reference=BaselineProbes.from_json(
                data.get("contamination_reference"), f"{here}, contamination_reference"
            ),
            phrasings=tuple(
                BaselinePhrasing.from_json(p, f"{here}, phrasings[{i}]")
                for i, p in enumerate(_get(data, "phrasings", list, here, optional=True) or [])
            ),
        )
