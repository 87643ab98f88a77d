"""``python -m sknnmfdiff``: the command line (see :mod:`sknnmfdiff.cli`)."""

import sys

from .cli import main

sys.exit(main())
