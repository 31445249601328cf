"""The contamination diagnostic in a run, in one place: the probes of a task's items (`probes`), their scores through
the store and the statistic's finding (`scores`), scoring them while a model's backend is loaded (`probing`), and a
case's record from its model's and its reference's scores (`case`)."""
