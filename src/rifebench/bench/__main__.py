"""`python -m rifebench.bench`: benchmark.sh's Python side (bench/runner.py).
The signal handlers go in before the runner (and matplotlib) is imported."""

import sys

from rifebench.run.interrupts import raise_on_signals

raise_on_signals()

from rifebench.bench.runner import main  # noqa: E402 - after the signal handlers, on purpose

sys.exit(main())
