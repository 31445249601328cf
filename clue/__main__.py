"""`python -m clue`: the same as the `clue` command."""

import sys

from clue.cli import main

sys.exit(main())
