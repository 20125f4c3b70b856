"""``python -m medtransfer.cli``: the ``medtransfer`` command without the console script."""

import os
import sys

from medtransfer.cli.command import main

if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("MPLBACKEND", "Agg")
    sys.exit(main())
