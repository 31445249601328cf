"""The statistics, pure: arrays in, numbers out, no I/O. `paired` (paired bootstrap and score intervals, the
defaults), `decision` (non-inferiority per metric, Holm across the gated metrics), `sequential` (the group-sequential
gate: alpha spending and boundaries), `calibration` (error rates by seeded simulation through the same code).
Internal: the gate that binds them to a case is `clue.run.gate`."""
