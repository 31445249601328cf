"""Fingerprints: what identifies a model, tokenizer, metric model, data or a generation in a key.

A local folder is its files' content hashes (each file hashed once per path, size and mtime, remembered in the
store's `file_hashes` table when a store is given); a hub id is the commit its revision resolves to; an installed
package is its version. `generation_key` and `memo_key` hash these with everything else that determines a value.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from clue.store.sqlite import GenerationStore, StoreWarning, canonical
from clue.types import GenerationSettings, Prompt

SCHEMA = 1  # of generation keys: bump when the key's payload changes meaning


def package_version(package: str) -> str:
    """An installed distribution's version (part of fingerprints: a new engine or metric release is a new key)."""
    try:
        return metadata.version(package)
    except (metadata.PackageNotFoundError, ValueError):
        return "missing"


def hub_commit(repo_id: str, revision: str | None) -> str | None:
    """The commit a hub id at `revision` resolves to now, or None when the hub cannot be asked (HF_HUB_OFFLINE,
    no network, an unknown id). One quick request; no retries."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return None
    try:
        from huggingface_hub import model_info

        sha = model_info(repo_id, revision=revision, timeout=10).sha
    except Exception:  # offline, unknown id, gated repository: keyed by name, with a warning
        return None
    return str(sha) if sha else None


def file_sha256(file: Path, store: GenerationStore | None = None) -> str:
    """Content hash of a file (the one file-hashing helper). With a store, computed once per (path, size, mtime):
    weight files are hashed once, not per run."""
    stat = file.stat()
    ident = (str(file.resolve()), stat.st_size, stat.st_mtime_ns)
    if store is not None and (known := store.cached_file_hash(ident)) is not None:
        return known
    digest = hashlib.sha256()
    with file.open("rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    value = digest.hexdigest()
    if store is not None:
        store.remember_file_hash(ident, value)
    return value


def folder_fingerprint(folder: Path, store: GenerationStore | None = None) -> dict[str, str]:
    """Content hashes of every file in a model folder (weights, config, tokenizer, template)."""
    return {
        str(f.relative_to(folder)): file_sha256(f, store)
        for f in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    }


def location_fingerprint(
    location: str, revision: str | None = None, store: GenerationStore | None = None
) -> dict[str, str]:
    """A model or tokenizer location: its files' content hashes when it is a local folder; for a hub id, the
    commit its revision (default main) resolves to, so new weights pushed to the hub are a new key. Offline,
    the id can only be keyed by name (and revision): that is warned about, loudly."""
    folder = Path(location)
    if folder.is_dir():
        return folder_fingerprint(folder, store)
    if folder.is_file():  # one file holding the whole model (GGUF)
        return {folder.name: file_sha256(folder, store)}
    commit = hub_commit(location, revision)
    if commit is not None:
        return {"hub_id": location, "commit": commit}
    pinned = revision is not None and len(revision) == 40 and all(c in "0123456789abcdef" for c in revision)
    if not pinned:
        warnings.warn(
            StoreWarning(
                f"{location}: the Hugging Face hub cannot be reached to resolve revision {revision or 'main'!r} "
                "to a commit, so stored generations are keyed by the model's name only: if the weights on the "
                'hub have changed, outputs of the old weights are reused. Pin revision = "<commit hash>" in '
                "the matrix entry, or point path at a local folder."
            ),
            stacklevel=2,
        )
    return {"hub_id": location, "revision": str(revision)}


def memo_key(fingerprint: Mapping[str, Any], *inputs: str) -> str:
    return hashlib.sha256(canonical({"metric": fingerprint, "inputs": inputs}).encode()).hexdigest()


def generation_key(
    model_fingerprint: Mapping[str, Any],
    prompt: Prompt,
    settings: GenerationSettings,
    *,
    per_sample: bool = False,
    batch_size: int | None = None,
) -> str:
    """sha256 over everything that determines the output.

    `per_sample`: the output is not a function of the prompt alone (recorded outputs keyed by sample, or sampling,
    where every repetition is its own draw), so the sample id is part of the key and identical prompts are not
    shared. `batch_size`: for engines whose batching changes outputs (transformers pads batches on the left, which
    changes greedy outputs in float16/bfloat16)."""
    decoding = {"temperature": settings.temperature, "top_p": settings.top_p, "seed": settings.seed}
    payload: dict[str, Any] = {
        "schema": SCHEMA,
        "model": model_fingerprint,
        "decoding": decoding,
        "task": prompt.task,
        "messages": [[m.role, m.content] for m in prompt.messages],
        "max_new_tokens": prompt.max_new_tokens,
        "truncatable": prompt.truncatable,
    }
    if per_sample:
        payload["sample_id"] = prompt.sample_id
    if batch_size is not None:
        payload["batch_size"] = batch_size
    return hashlib.sha256(canonical(payload).encode()).hexdigest()
