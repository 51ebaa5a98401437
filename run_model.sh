#!/usr/bin/env bash
# The main job: RIFE inference benchmark. Every option is a flag and an
# environment variable; see ./run_model.sh --help. Creates .venv (setup.sh) on
# first use; missing default weights are fetched as get_model.sh does.
set -euo pipefail
# A signal before Python takes over (the environment check takes a second) gets the
# line and the status Python gives one during start-up (src/rifebench/run/interrupts.py).
interrupted() { echo "run_model.sh: error: interrupted by SIG$1 during start-up; nothing was measured" >&2; exit 130; }
trap 'interrupted INT' INT
trap 'interrupted TERM' TERM
trap 'interrupted HUP' HUP
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${VENV_DIR:-$here/.venv}"
if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c "import torch, rifebench" >/dev/null 2>&1; then
  echo "run_model.sh: no usable environment in $venv; running setup.sh" >&2
  VENV_DIR="$venv" "$here/setup.sh" >&2
fi
exec "$venv/bin/python" -m rifebench "$@"
