"""One run, case by case, in pipeline order (docs/architecture.md): `plan` (the model matrix expanded into cases),
`catalog` (each task's data, read and split once), `generator` with `stored` (generations through the store),
`scoring` (per-sample scores), `references` (the base side: a base model's result or a stored baseline), `gate`
(the statistics bound to a case), `evaluation` (one case decided), `case_record` (its typed record), `outputs` (the
run's files), and `session`, which wires the parts together for the two front ends. Internal: front ends use
`clue.evaluate` or the pytest plugin."""
