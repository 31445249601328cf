"""Perturbed neighbours of a reference answer, for the contamination diagnostic (clue/statistics/contamination.py).

A neighbour is the answer with a share of its content words (not "the", "of", "what", ...) replaced by content words
of the task's other answers, capitalised alike: the same length, layout, punctuation, function words and domain
vocabulary, not the exact token sequence. Mattern et al. (2023) draw neighbours from
a masked language model; that needs a model download, and the replacement here is enough for the diagnostic,
because it compares the candidate's gain over its base on the exact answer with the same gain on the neighbours:
whatever makes a neighbour less fluent lowers its likelihood under both models and cancels. Deterministic: the
neighbours of an answer depend on its text, the vocabulary and the seed alone.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Iterable, Sequence

__all__ = ["MIN_WORDS", "TOKEN", "cased_like", "is_content", "neighbours", "split_core", "vocabulary", "words"]

MIN_WORDS = 4  # answers with fewer words (a label, a letter) have no neighbours worth the name
# English function words: kept as they are, so that a neighbour reads like the answer
FUNCTION_WORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "him",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
    ]
)
TOKEN = re.compile(r"\S+")  # a word with the punctuation around it
_CORE = re.compile(r"^(\W*)(.*?)(\W*)$", re.DOTALL)


def is_content(core: str) -> bool:
    """Whether a word (its punctuation stripped) is one a neighbour may replace: not a function word."""
    return any(ch.isalnum() for ch in core) and core.casefold() not in FUNCTION_WORDS


def split_core(token: str) -> tuple[str, str, str]:
    """A token's leading punctuation, its word and its trailing punctuation."""
    lead, core, trail = _CORE.match(token).groups()  # type: ignore[union-attr]
    return lead, core, trail


def words(text: str) -> list[str]:
    """The content words of a text (punctuation around a word stripped; function words left out), lower-cased
    unless written in capitals throughout (an abbreviation)."""
    cores = (split_core(token)[1] for token in TOKEN.findall(text))
    return [c if c.isupper() and len(c) > 1 else c.casefold() for c in cores if is_content(c)]


def vocabulary(answers: Iterable[str]) -> tuple[str, ...]:
    """The replacement words: every content word of the task's answers, once, in a fixed order."""
    return tuple(sorted({w for answer in answers for w in words(answer)}))


def cased_like(word: str, model: str) -> str:
    """`word` capitalised as `model` is (a sentence's first word stays capitalised)."""
    return word[:1].upper() + word[1:] if model[:1].isupper() and not word.isupper() else word


def neighbours(text: str, vocab: Sequence[str], *, k: int, share: float, seed: str) -> tuple[str, ...]:
    """`k` neighbours of `text`, each with round(share x content words) (at least one) of its content words
    replaced by a different word of `vocab`; () when the text has fewer than MIN_WORDS words, no content word, or
    the vocabulary offers no other word."""
    tokens = [m for m in TOKEN.finditer(text) if any(ch.isalnum() for ch in m.group())]
    spans = [m for m in tokens if is_content(split_core(m.group())[1])]
    if len(tokens) < MIN_WORDS or not spans or len(set(vocab)) < 2:
        return ()
    rng = random.Random(int.from_bytes(hashlib.sha256(f"{seed}\0{text}".encode()).digest()[:8], "big"))
    count = max(1, round(share * len(spans)))
    made: list[str] = []
    for _ in range(k):
        chosen = sorted(rng.sample(range(len(spans)), count))
        pieces, at = [], 0
        for index in chosen:
            span = spans[index]
            lead, core, trail = split_core(span.group())
            other = core
            while other.casefold() == core.casefold():
                other = vocab[rng.randrange(len(vocab))]
            pieces += [text[at : span.start()], lead, cased_like(other, core), trail]
            at = span.end()
        made.append("".join(pieces) + text[at:])
    return tuple(made)
