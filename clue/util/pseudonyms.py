"""Pseudonyms for what a credentialed data set must not show in an artefact: sample ids and texts."""

from __future__ import annotations

import hashlib
import re


def hash_id(task: str, sample_id: str) -> str:
    """A stable pseudonym for a sample id (MIMIC ids are identifiers): pairs still match across models and runs."""
    return hashlib.sha256(f"{task}\0{sample_id}".encode()).hexdigest()[:16]


def hash_text(kind: str, task: str, text: str) -> str:
    """A pseudonym for a text (a model output, a prompt): equal texts get equal hashes, and the text cannot be read
    back. `kind` keeps hashes of different things apart."""
    return hashlib.sha256(f"{kind}\0{task}\0{text}".encode()).hexdigest()[:16]


# what a failed generation's message starts with before text from outside clue (a server's response body, an
# engine's exception message) may follow: "HTTP 400 from URL", "generation failed: ValueError"
_SOURCE = re.compile(r"(HTTP \d{3} from \S+|generation failed: [\w.]+|[^:]*)(: .*)?", re.DOTALL)


def shareable_error(error: str) -> str:
    """A failed generation's message as a report of credentialed data may hold it: clue's own words, without the
    detail that came from outside (a server may echo the request's messages in a validation error, an engine's
    exception may quote the prompt). The store keeps the whole message; --clue-report-samples shows it."""
    match = _SOURCE.fullmatch(error)
    if match is None or not match.group(2):
        return error
    return f"{match.group(1)} (detail withheld: it may quote the prompt; --clue-report-samples shows it)"
