"""`python -m rifebench.fetch`: get_model.sh's Python side (fetch/weights.py)."""

import sys

from rifebench.fetch.weights import main

sys.exit(main())
