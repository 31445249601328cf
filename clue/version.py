"""clue's version (results, baselines and provenance record it)."""

__version__ = "0.1.0"
