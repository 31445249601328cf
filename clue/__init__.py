"""clue: the CLUE clinical LLM benchmark as a pytest suite, with a paired regression gate against a base model.

Importing clue imports neither torch nor any inference engine: backends are loaded when a model needs them.
"""

__version__ = "0.1.0"
