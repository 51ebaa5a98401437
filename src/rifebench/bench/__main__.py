"""`python -m rifebench.bench`: benchmark.sh's Python side (bench/runner.py)."""

import sys

from rifebench.bench.runner import main

sys.exit(main())
