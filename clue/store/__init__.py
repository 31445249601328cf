"""What persists between runs: the SQLite generation store (`sqlite`: generations, metric memos, token counts,
mode 0600) and the keys it is addressed by (`fingerprint`: models, decoding, prompts, metric settings). Internal;
the loop that generates through the store is `clue.run.store_loop`."""
