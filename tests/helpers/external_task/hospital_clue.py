"""A hospital's own natural-language-inference test set, in MedNLI's published format (JSON Lines with sentence1,
sentence2, gold_label, pairID): clue's MedNLI task under another name and file."""

from clue.tasks.mednli import MedNLI


class HospitalNLI(MedNLI):
    name = "hospital_nli"
    title = "Hospital NLI"
    data_files = ("hospital_nli.jsonl",)
