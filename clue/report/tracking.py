"""MLflow tracking (`--clue-mlflow URI`): a run's verdicts beside the training runs a team already tracks.

Layout, after MLflow's own convention for a sweep (a parent run with nested child runs, `mlflow.parentRunId`): one
parent run per clue session (the settings as parameters, the run-level reports as artefacts, the verdict counts as
tags), and one child run per case, named `<task>/<case>`:

- parameters: task, case, model, base model or stored baseline and its kind, clue's version, the data file's
  SHA-256 and record count, the seeds, the limit and the decoding settings;
- metrics: each metric's value for the model and its interval, and for a gated case the base's value, the
  difference, its interval and the one-sided p-values; the case's counts (n, parse failures, truncations, failed
  generations); under --clue-phrasings each wording's difference and the spread's;
- tags: the verdict, the headline, the weights check, the contamination finding, the phrasing finding;
- artefacts: the case's results JSON.

Only what the records hold goes out: sample ids hashed, no text of a credentialed data set. A run with
--clue-report-samples (raw text in the reports) uploads no artefacts at all, because a default run would keep that
text out of its reports. Everything is read from the records after the reports are written; a tracking server that
is down or refuses is one error then, and the verdicts never wait for it (at most `RETRIES` retries of
`TIMEOUT_S` each, unless MLFLOW_HTTP_REQUEST_* says otherwise). mlflow is an optional extra: pip install "clue[mlflow]".
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clue.errors import ClueError
from clue.records import CaseRecord, RunRecord
from clue.version import __version__

RETRIES = 2
TIMEOUT_S = 30
_BAD_KEY = re.compile(r"[^A-Za-z0-9_\-. :]")  # MLflow's characters, less "/" (a key must not read as a path)
PARAM_MAX = 6000  # MLflow's limit on a parameter's value
BATCH = {"metrics": 1000, "params": 100, "tags": 100}


@dataclass(frozen=True)
class Tracked:
    """What was logged: the parent run, the experiment and how many cases."""

    uri: str
    experiment: str
    parent_run_id: str
    cases: int

    def line(self) -> str:
        return (
            f"MLflow: {self.cases} case{'s' if self.cases != 1 else ''} logged to experiment {self.experiment!r} at "
            f"{shown_uri(self.uri)} (parent run {self.parent_run_id})"
        )


def shown_uri(uri: str) -> str:
    """The URI as messages show it: without user-info (a password in it would land in the CI log)."""
    return re.sub(r"//[^/@]*@", "//***@", uri)


def key(text: str) -> str:
    """A metric, parameter or tag key MLflow accepts (a third-party metric's name may hold other characters)."""
    cleaned = _BAD_KEY.sub("_", text)[:250]
    return cleaned if cleaned.strip(". ") else f"_{cleaned}"  # ".", "..": names MLflow reads as paths


def case_params(record: CaseRecord) -> dict[str, str]:
    provenance: Mapping[str, Any] = record.provenance
    data: Mapping[str, Any] = provenance.get("data") or {}
    values: dict[str, Any] = {
        "task": record.task,
        "case": record.case,
        "model": record.model,
        "base": record.base_model,
        "base_kind": record.base_kind,
        "clue_version": provenance.get("clue", __version__),
        "data_sha256": data.get("sha256"),
        "data_records": data.get("records"),
        "n": record.n,
        "primary_metric": record.primary_metric,
        "confidence": record.confidence,
        "seed": provenance.get("seed"),
        "fewshot_seed": provenance.get("fewshot_seed"),
        "bootstrap_seed": provenance.get("bootstrap_seed"),
        "limit": provenance.get("limit"),
        "data_use": (provenance.get("data_use") or {}).get("cleared_by"),
    }
    values.update({f"generation.{k}": v for k, v in record.generation_settings.items()})
    return {key(k): str(v)[:PARAM_MAX] for k, v in values.items() if v is not None}


def case_metrics(record: CaseRecord) -> dict[str, float]:
    out: dict[str, float] = {
        "n": record.n,
        "parse_failures": record.parse_failures,
        "truncated_samples": record.truncated_samples,
        "failed_generations": record.failed_generations,
    }
    for name, entry in record.metrics.items():
        out.update({name: entry.value, f"{name}.ci_low": entry.ci_low, f"{name}.ci_high": entry.ci_high})
        c = entry.comparison
        if c is not None:
            out.update(
                {
                    f"{name}.base": c.base_mean,
                    f"{name}.difference": c.delta,
                    f"{name}.difference_ci_low": c.ci_low,
                    f"{name}.difference_ci_high": c.ci_high,
                    f"{name}.p_regression": c.p_regression,
                    f"{name}.p_noninferior": c.p_noninferior,
                    f"{name}.p_superior": c.p_superior,
                }
            )
    for wording in record.phrasings:
        out[f"phrasings.{wording.wording}.difference"] = wording.comparison.delta
        out[f"phrasings.{wording.wording}.p_regression"] = wording.comparison.p_regression
    summary = record.phrasings_summary
    if summary is not None:
        out.update({"phrasings.model_spread": summary.model_spread, "phrasings.base_spread": summary.base_spread})
    if record.contamination is not None and record.contamination.statistic is not None:
        out["contamination.statistic"] = record.contamination.statistic
    return {key(k): float(v) for k, v in out.items() if isinstance(v, int | float) and math.isfinite(v)}


def case_tags(record: CaseRecord) -> dict[str, str]:
    tags: dict[str, Any] = {
        "clue.task": record.task,
        "clue.case": record.case,
        "clue.verdict": record.verdict,
        "clue.headline": record.headline,
        "clue.weights_check": record.weights_check,
        "clue.sequential_stop": (record.sequential.boundary or "data ran out") if record.sequential else None,
    }
    if record.contamination is not None:
        tags["clue.contamination"] = record.contamination.status
    if record.phrasings_summary is not None:
        s = record.phrasings_summary
        tags["clue.phrasings"] = f"{s.verdict} (reference wording alone: {s.reference_verdict}); {s.finding}"
    return {k: str(v)[:PARAM_MAX] for k, v in tags.items() if v is not None}


def folder_store(uri: str) -> bool:
    """A file store (a folder, or a file: URI): MLflow 3 refuses those unless MLFLOW_ALLOW_FILE_STORE is set."""
    return (
        uri.startswith("file:") or not re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", uri) or bool(re.match(r"[A-Za-z]:", uri))
    )


@contextmanager
def _patience(uri: str) -> Iterator[None]:
    """MLflow's HTTP client retries seven times with doubling waits by default (minutes against a server that is
    down): bounded here, unless the user set MLFLOW_HTTP_REQUEST_* themselves. A folder the user named as the store
    is taken as one (MLflow 3 keeps its file store in maintenance mode and refuses it without the opt-out)."""
    wanted = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(RETRIES), "MLFLOW_HTTP_REQUEST_TIMEOUT": str(TIMEOUT_S)}
    if folder_store(uri):
        wanted["MLFLOW_ALLOW_FILE_STORE"] = "true"
    added = {k: v for k, v in wanted.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


class Tracker:
    """Logs one finished run to an MLflow tracking store (see the module's docstring)."""

    def __init__(self, uri: str, experiment: str):
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise ClueError('--clue-mlflow needs MLflow: pip install "clue[mlflow]" (or pip install mlflow)') from None
        self.uri, self.experiment = uri, experiment
        with _patience(uri):  # the client opens its store here
            self.client = MlflowClient(tracking_uri=uri)

    def log(
        self, record: RunRecord, settings: Mapping[str, str], artefacts: Sequence[Path], case_files: Mapping[str, Path]
    ) -> Tracked:
        """The session's parent run and one child per case; artefacts only where given (none under
        --clue-report-samples)."""
        with _patience(self.uri):
            experiment_id = self._experiment()
            counts: dict[str, int] = {}
            for r in record.results:
                counts[r.verdict] = counts.get(r.verdict, 0) + 1
            parent_tags = {f"clue.{k}": str(v) for k, v in sorted(counts.items())}
            parent_tags.update({"clue.version": __version__, "clue.interrupted": str(record.interrupted)})
            parent = self.client.create_run(experiment_id, tags=parent_tags, run_name=f"clue {time.strftime('%F %T')}")
            run_id = parent.info.run_id
            try:
                self._batch(run_id, {}, {key(k): v[:PARAM_MAX] for k, v in settings.items()}, {})
                for r in record.results:
                    self._case(experiment_id, run_id, r, case_files.get(f"{r.task}/{r.case}"))
                for path in artefacts:
                    if path.is_file():
                        self.client.log_artifact(run_id, str(path))
            except BaseException:
                self.client.set_terminated(run_id, status="FAILED")
                raise
            self.client.set_terminated(run_id, status="FINISHED")
        return Tracked(self.uri, self.experiment, run_id, len(record.results))

    def _experiment(self) -> str:
        found = self.client.get_experiment_by_name(self.experiment)
        if found is not None:
            if found.lifecycle_stage == "deleted":
                raise ClueError(f"MLflow experiment {self.experiment!r} is deleted: restore it or name another")
            return str(found.experiment_id)
        return str(self.client.create_experiment(self.experiment))

    def _case(self, experiment_id: str, parent_id: str, record: CaseRecord, results_json: Path | None) -> None:
        tags = {**case_tags(record), "mlflow.parentRunId": parent_id}
        child = self.client.create_run(experiment_id, tags=tags, run_name=f"{record.task}/{record.case}")
        self._batch(child.info.run_id, case_metrics(record), case_params(record), {})
        if results_json is not None and results_json.is_file():
            self.client.log_artifact(child.info.run_id, str(results_json))
        self.client.set_terminated(child.info.run_id, status="FINISHED")

    def _batch(
        self, run_id: str, metrics: Mapping[str, float], params: Mapping[str, str], tags: Mapping[str, str]
    ) -> None:
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        m = [Metric(k, v, now, 0) for k, v in metrics.items()]
        p = [Param(k, v) for k, v in params.items()]
        t = [RunTag(k, v) for k, v in tags.items()]
        while m or p or t:
            self.client.log_batch(
                run_id, metrics=m[: BATCH["metrics"]], params=p[: BATCH["params"]], tags=t[: BATCH["tags"]]
            )
            m, p, t = m[BATCH["metrics"] :], p[BATCH["params"] :], t[BATCH["tags"] :]
