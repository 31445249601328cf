"""Reports: the results JSON (the source of truth every other report is derived from) and JUnit properties."""
