"""The data-use guard: where a credentialed task's prompts may go, decided from the matrix before anything connects.

Four of CLUE's data sets are MIMIC-derived and credentialed, and so is any task that does not declare its data
public (`Task.public_data`; a hospital's own task holds patient text). PhysioNet's policy on LLM services
(2025-09-24) lets credentialed data go only to services with zero data retention, no training use and no human
review, and recommends local models. So a credentialed task's prompts (generation, contamination probes, other
wordings: everything the model sees) go only to

- an engine in this process (`in_process = True` on the backend class: transformers, vLLM's offline engine, replay);
- a server on this machine: a loopback address (127.0.0.0/8, ::1, `localhost`) or a Unix socket (`unix_socket`);
- a host the entry declares approved for credentialed data (`approved_host`, with `approval_reason`, which every
  result's provenance records), for example a hospital's own gateway.

The check reads the entry's text only: no name is resolved for it, and a host that is not plain ASCII (an IDN in
Unicode, a full-width dot) is never taken for loopback. A name that merely says loopback (`localhost`) is held to
it when connecting: the server backend refuses a connection whose peer is not a loopback address before a byte is
sent, bypasses proxies for it, and follows no redirect (a redirect from an approved endpoint to another host is an
error too). A backend that does not say where its prompts go (a third-party class with neither `in_process` nor
`destination`) is treated as remote.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from clue.backends.registry import BACKENDS
from clue.errors import ConfigError
from clue.models.matrix import ModelSpec
from clue.util.hosts import is_loopback, normal_host, url_host

Kind = Literal["in-process", "loopback", "unix-socket", "remote"]
ON_THIS_MACHINE: frozenset[str] = frozenset({"in-process", "loopback", "unix-socket"})


@dataclass(frozen=True)
class Destination:
    """Where an entry's prompts go: its kind, the host (a server's) and a description for messages."""

    kind: Kind
    host: str | None
    where: str


@dataclass(frozen=True)
class Clearance:
    """Why a task's prompts may go where they go: recorded in the result's provenance."""

    destination: Destination
    credentialed: bool
    cleared_by: str  # "public data", "in-process engine", "loopback address", "unix socket", "approved: <reason>"

    def to_json(self) -> dict[str, Any]:
        return {
            "destination": self.destination.where,
            "kind": self.destination.kind,
            "credentialed": self.credentialed,
            "cleared_by": self.cleared_by,
        }


def server_destination(base_url: str, unix_socket: str = "") -> Destination:
    """Where an HTTP server entry's prompts go (the openai backend's `destination`)."""
    if unix_socket:
        return Destination("unix-socket", None, f"the Unix socket {unix_socket}")
    host = url_host(base_url)
    return Destination("loopback" if is_loopback(host) else "remote", host, f"{host} ({base_url})")


def destination(spec: ModelSpec) -> Destination:
    """Where the entry's prompts go, as its backend class says (`in_process`, or a static `destination(spec)`)."""
    try:
        backend_cls = BACKENDS.load(spec.backend, "backend")
    except ConfigError as exc:
        raise ConfigError(f"model {spec.name!r}: {exc}") from None
    says = getattr(backend_cls, "destination", None)
    if callable(says):
        found = says(spec)
        if not isinstance(found, Destination):
            raise ConfigError(f"backend {spec.backend!r}: destination() gave {found!r}, not a Destination")
        return found
    if getattr(backend_cls, "in_process", False) is True:
        return Destination("in-process", None, f"the {spec.backend} engine in this process")
    return Destination("remote", None, f"wherever backend {spec.backend!r} sends them (it does not say)")


def credentialed(task: str) -> bool:
    """A task whose data is not declared public (clue's MIMIC-derived ones, and any task that does not say)."""
    from clue.tasks.registry import TASKS

    try:
        return not TASKS.load(task, "task").public_data
    except ConfigError:
        return True  # an unknown task is the plan's error; here it is restricted


def approved(spec: ModelSpec, where: Destination) -> bool:
    """The entry declares this destination's host approved for credentialed data (with a reason)."""
    if not (spec.approved_host and spec.approval_reason and where.host):
        return False
    return normal_host(spec.approved_host.strip(), f"model {spec.name!r}: approved_host") == where.host


def clearance(spec: ModelSpec, task: str) -> Clearance:
    """Why `task`'s prompts may go to the entry's destination; ConfigError naming the entry, the host, the task and
    how to declare the endpoint when they may not."""
    where = destination(spec)
    if not credentialed(task):
        return Clearance(where, False, "public data")
    if where.kind in ON_THIS_MACHINE:
        cleared = {"in-process": "in-process engine", "loopback": "loopback address", "unix-socket": "unix socket"}
        return Clearance(where, True, cleared[where.kind])
    if approved(spec, where):
        return Clearance(where, True, f"approved: {spec.approval_reason}")
    raise refusal(spec, where, [task])


def check_data_use(spec: ModelSpec, tasks: Iterable[str]) -> None:
    """Start-up: every credentialed task among `tasks` may go where the entry sends prompts (one error listing all
    of them otherwise). Nothing is resolved or connected."""
    restricted = sorted(t for t in set(tasks) if credentialed(t))
    if not restricted:
        return
    where = destination(spec)
    if where.kind not in ON_THIS_MACHINE and not approved(spec, where):
        raise refusal(spec, where, restricted)


def refusal(spec: ModelSpec, where: Destination, tasks: list[str]) -> ConfigError:
    host = where.host or "<host>"
    declared = ""
    if spec.approved_host:
        declared = f" (its approved_host is {spec.approved_host!r}, which is not {host!r})"
    elif where.host and not spec.approval_reason:
        declared = " (it declares no approved_host)"
    return ConfigError(
        f"model {spec.name!r}: {', '.join(tasks)} {'is' if len(tasks) == 1 else 'are'} credentialed data "
        f"(PhysioNet's data use agreement) and the entry would send its prompts to {where.where}, which is not on "
        f"this machine{declared}. Use a local engine, a server on a loopback address or a Unix socket, or deselect "
        f"the task (-k 'not {tasks[0]}'); where the endpoint meets PhysioNet's policy for LLM services (zero data "
        f"retention, no training use, no human review), declare it in the entry: approved_host = {host!r} and "
        'approval_reason = "why it may receive credentialed data" (recorded in every result\'s provenance)'
    )
