"""Small helpers every layer may use and that use nothing of clue's but `clue.errors`: atomic file writes
(`files`), strict JSON reading (`strict_json`), hashed ids and shareable error text (`pseudonyms`), and the lazy
`Registry[T]` the task, backend and metric registries are built from (`registry`). Internal."""
