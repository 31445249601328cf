"""`clue data fetch TASK`: download a public data set from where it is published, prove it is the file clue was
validated on, and put it where `--clue-data-dir` looks.

The bytes are streamed into a temporary folder beside the target, hashed as they arrive (at most `MAX_BYTES`: a
server that never stops cannot fill the disk), checked against the pinned SHA-256, validated by the task's own
loader, and only then renamed into place (`os.replace`, atomic on one file system). A failed, truncated, oversized or
tampered download leaves nothing behind: no file, no temporary folder, no data folder it created. Redirects are
followed (the hash, not the address, proves the bytes) and reported. Credentialed data sets are never downloaded:
the command says how to obtain or build them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from clue.data.check import DATASETS, DataSet, check_one
from clue.errors import ClueError
from clue.store.fingerprint import file_sha256

MAX_BYTES = 256 * 2**20  # the largest public file is LongHealth's (about 5 MB); a cap far above it
CHUNK = 2**16
TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Source:
    """Where a public data set is published and the SHA-256 of the copy clue was validated on (None: clue holds
    no pin, and `--sha256` must name the copy the user trusts)."""

    dataset: str  # DataSet.name
    folder: str  # DIR/<folder>/<file>, where the task's find_data looks first
    file: str
    url: str
    sha256: str | None
    pinned_from: str  # what the pin was taken from


SOURCES: dict[str, Source] = {
    "meqsum": Source(
        "MeQSum",
        "meqsum",
        "MeQSum_ACL2019_BenAbacha_Demner-Fushman.xlsx",
        "https://raw.githubusercontent.com/abachaa/MeQSum/587a50005d6ce765b88734116f281b84f6b6b605/"
        "MeQSum_ACL2019_BenAbacha_Demner-Fushman.xlsx",
        "abedd939d5014306ca576522416bf69103e85dc8fcf1668a4099e8b84a39eeea",
        "abachaa/MeQSum at 587a500 (the commit that last changed the file; unchanged since 2019)",
    ),
    "longhealth": Source(
        "LongHealth",
        "longhealth",
        "benchmark_v5.json",
        "https://raw.githubusercontent.com/kbressem/LongHealth/main/data/benchmark_v5.json",
        None,
        "no copy of the published file was available to clue's maintainers: pass --sha256 with the hash of a copy "
        "you trust (clue data check prints it), and clue checks every later fetch against it",
    ),
}
ALIASES = {"longhealth_task1": "longhealth", "longhealth_task2": "longhealth", "longhealth_task3": "longhealth"}


@dataclass(frozen=True)
class Fetched:
    """What `fetch` did, for the command's output."""

    path: Path
    size: int
    sha256: str
    records: int | None
    checked_against: str  # "clue's pin" | "--sha256"
    already_there: bool = False
    redirected_to: str | None = None


def _dataset(name: str) -> DataSet:
    return next(d for d in DATASETS if d.task == name or d.task.startswith(name))


def source_of(task: str) -> Source:
    """The public source of `task`; ClueError saying how to obtain a credentialed or unknown one."""
    name = ALIASES.get(task, task)
    if name in SOURCES:
        return SOURCES[name]
    known = {d.task for d in DATASETS}
    if task in known:
        dataset = _dataset(task)
        build = f"clue data build {task} --help" if "clue data build" in dataset.source else None
        how = f"build it from the PhysioNet files: {build}" if build else f"obtain it from {dataset.source}"
        raise ClueError(
            f"{dataset.name} is credentialed (PhysioNet's data use agreement): clue does not download it. Sign the "
            f"agreement as a credentialed PhysioNet user, then {how}; place it in DIR/{task}/ and run clue data check"
        )
    raise ClueError(f"no data set {task!r} to fetch; public ones: {', '.join(SOURCES)} (credentialed: {_listed()})")


def _listed() -> str:
    return ", ".join(d.task for d in DATASETS if d.task not in SOURCES and not d.task.startswith("longhealth"))


def fetch(
    task: str,
    data_dir: Path,
    *,
    url: str | None = None,
    sha256: str | None = None,
    timeout_s: float = TIMEOUT_S,
    progress: Callable[[int, int | None], None] | None = None,
) -> Fetched:
    """Download `task`'s public file into `data_dir` (see the module's docstring); ClueError when it cannot."""
    source = source_of(task)
    expected = (sha256 or source.sha256 or "").lower()
    if sha256 is not None and (len(expected) != 64 or any(c not in "0123456789abcdef" for c in expected)):
        raise ClueError(f"--sha256 {sha256!r} is not a SHA-256 (64 hexadecimal digits)")
    if not expected:
        raise ClueError(f"{source.dataset}: clue holds no pinned SHA-256 ({source.pinned_from})")
    against = "--sha256" if sha256 is not None else "clue's pin"
    target = data_dir / source.folder / source.file
    if target.is_file():
        return _present(source, target, expected, against)
    return _download(source, target, url or source.url, expected, against, timeout_s, progress)


def _present(source: Source, target: Path, expected: str, against: str) -> Fetched:
    """A file already in place: kept when it is the pinned one, never overwritten when it is not."""
    found = file_sha256(target)
    if found != expected:
        raise ClueError(
            f"{target} exists and is not the file {against} names (sha256 {found}, expected {expected}); "
            "move it away to fetch the published one"
        )
    return Fetched(target, target.stat().st_size, found, _records(source, target.parent.parent), against, True)


def _download(
    source: Source,
    target: Path,
    url: str,
    expected: str,
    against: str,
    timeout_s: float,
    progress: Callable[[int, int | None], None] | None,
) -> Fetched:
    if not url.startswith(("https://", "http://", "file://")):
        raise ClueError(f"--url {url!r}: give an https://, http:// or file:// address")
    made = [p for p in (target.parent.parent, target.parent) if not p.exists()]
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".clue-fetch-", dir=target.parent))
    try:
        part = staging / source.file
        size, digest, final = _stream(url, part, timeout_s, progress)
        if digest != expected:
            raise ClueError(
                f"{url}: the downloaded file is not the one {against} names (sha256 {digest}, expected {expected}; "
                f"{size} bytes): nothing was written"
            )
        dataset = check_one(staging.parent.parent, _dataset(source.folder), {_dataset(source.folder).task: part})
        if dataset.status != "found":
            raise ClueError(f"{url}: the file has the pinned hash but does not load: {dataset.problem}")
        os.replace(part, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for folder in reversed(made):
            shutil.rmtree(folder, ignore_errors=True)
        raise
    shutil.rmtree(staging, ignore_errors=True)
    records = dataset.records
    return Fetched(target, size, digest, records, against, redirected_to=final if final != url else None)


def _stream(
    url: str, part: Path, timeout_s: float, progress: Callable[[int, int | None], None] | None
) -> tuple[int, str, str]:
    """The body at `url` written to `part`: its size, SHA-256 and the address that answered (after redirects)."""
    digest, size = hashlib.sha256(), 0
    request = urllib.request.Request(url, headers={"User-Agent": "clue-data-fetch"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response, part.open("wb") as out:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            if total is not None and total > MAX_BYTES:
                raise ClueError(f"{url}: the server announces {total} bytes, more than the {MAX_BYTES} a data set has")
            while chunk := response.read(CHUNK):
                size += len(chunk)
                if size > MAX_BYTES:
                    raise ClueError(f"{url}: more than {MAX_BYTES} bytes; not a data set clue knows: stopped")
                digest.update(chunk)
                out.write(chunk)
                if progress:
                    progress(size, total)
            if total is not None and size != total:
                raise ClueError(f"{url}: the server stopped after {size} of {total} bytes: nothing was written")
            final = response.geturl()
    except ClueError:
        raise
    except urllib.error.HTTPError as exc:
        raise ClueError(f"{url}: HTTP {exc.code} ({exc.reason}): nothing was written") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:  # refused, reset, timed out, cut mid-body
        reason = getattr(exc, "reason", exc)
        failed = f"{type(reason).__name__}: {reason}"
        raise ClueError(f"{url}: the download failed ({failed}): nothing was written") from None
    except Exception as exc:  # http.client.IncompleteRead and kin
        raise ClueError(f"{url}: the download failed ({type(exc).__name__}): nothing was written") from None
    return size, digest.hexdigest(), final


def _records(source: Source, data_dir: Path) -> int | None:
    return check_one(data_dir, _dataset(source.folder)).records
