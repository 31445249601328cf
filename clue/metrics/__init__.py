"""Per-sample metric functions. Aggregation is always the plain mean over samples (see `TaskResult.aggregate`)."""
