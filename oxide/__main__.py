"""``python -m oxide``: the same command line as the ``oxide`` script."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
