#!/usr/bin/env bash
# Download, test and extract the Vimeo-90K triplet test set (vimeo_interp_test.zip, 1.7 GB).
#   ./get_dataset.sh [--dir DIR] [--url URL]
#   --dir DIR   where vimeo_interp_test.zip and vimeo_interp_test/ go
#               (default: $DATASET_DIR, else the current directory)
#   --url URL   the archive's address (default: $RIFEBENCH_VIMEO_URL, else the official
#               http://data.csail.mit.edu/tofu/testset/vimeo_interp_test.zip)
# An interrupted download resumes on the next run; the archive must pass its CRC test
# before it is extracted; the folder appears only once fully extracted. Skips whatever
# is already there. On success the dataset folder (for --data / DATASET_DIR) is printed
# on stdout; progress and errors go to stderr. Exit status 0 done, 1 failed, 2 bad usage.
set -euo pipefail

root=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)

for arg in "$@"; do
  case "$arg" in
    -h|--help) sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
  esac
done

venv="${VENV_DIR:-$root/.venv}"
python=("$venv/bin/python")
if [[ ! -x "${python[0]}" ]]; then
  echo "get_dataset.sh: ${python[0]} is missing; running setup.sh" >&2
  VENV_DIR="$venv" "$root/setup.sh" >&2
fi

# No cd: a relative --dir / DATASET_DIR stays relative to the caller's directory.
export PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}"
exec "${python[@]}" -m rifebench.fetch.vimeo "$@"
