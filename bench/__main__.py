"""``python -m bench``: run the benchmarks (``nox -s bench`` does this in its own environment)."""

from bench.run import main

raise SystemExit(main())
