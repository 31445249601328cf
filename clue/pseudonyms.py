"""Pseudonyms for what a credentialed data set must not show in an artefact: sample ids and texts."""

from __future__ import annotations

import hashlib


def hash_id(task: str, sample_id: str) -> str:
    """A stable pseudonym for a sample id (MIMIC ids are identifiers): pairs still match across models and runs."""
    return hashlib.sha256(f"{task}\0{sample_id}".encode()).hexdigest()[:16]


def hash_text(kind: str, task: str, text: str) -> str:
    """A pseudonym for a text (a model output, a prompt): equal texts get equal hashes, and the text cannot be read
    back. `kind` keeps hashes of different things apart."""
    return hashlib.sha256(f"{kind}\0{task}\0{text}".encode()).hexdigest()[:16]
