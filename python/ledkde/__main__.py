"""``python -m ledkde``: the command line (ledkde.experiments.cli)."""

import sys

from .experiments.cli import main

if __name__ == "__main__":
    sys.exit(main())
