"""Data set builders (from the credentialed MIMIC-IV files) and the data checker behind `clue data`."""
