#!/usr/bin/env bash
# Create .venv with pinned dependencies. Idempotent: a second run with the same
# inputs only checks a stamp and exits.
#   TORCH_SPEC   pip requirement for torch (default torch==2.13.0, the CPU build
#                here; e.g. "torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128")
#   VENV_DIR     where the environment goes (default .venv)
#   PYTHON       interpreter used to create it (default python3)
#   SETUP_DEV=1  also install the test tools (pytest, linters)
#   --dev        same as SETUP_DEV=1;  --with-dataset  also run get_dataset.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

dev=${SETUP_DEV:-0}
with_dataset=0
for arg in "$@"; do
  case "$arg" in
    --dev) dev=1 ;;
    --with-dataset) with_dataset=1 ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup.sh: unknown argument '$arg' (accepted: --dev, --with-dataset)" >&2; exit 2 ;;
  esac
done

venv=${VENV_DIR:-.venv}
torch_spec=${TORCH_SPEC:-torch==2.13.0}
python=${PYTHON:-python3}

want="$torch_spec|dev=$dev|$(cat requirements.txt requirements-dev.txt pyproject.toml | sha256sum | cut -c1-16)"
stamp="$venv/.rifebench-setup"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "setup.sh: $venv is up to date ($torch_spec)"
else
  if [[ ! -x "$venv/bin/python" ]]; then
    echo "setup.sh: creating $venv with $($python --version 2>&1)"
    "$python" -m venv "$venv"
  fi
  pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
  echo "setup.sh: installing $torch_spec"
  # shellcheck disable=SC2086  # TORCH_SPEC may carry pip options (an --index-url)
  "${pip[@]}" install $torch_spec
  echo "setup.sh: installing requirements.txt"
  "${pip[@]}" install -r requirements.txt
  if [[ "$dev" == 1 ]]; then
    echo "setup.sh: installing requirements-dev.txt"
    "${pip[@]}" install -r requirements-dev.txt
  fi
  # Editable install of our package; no build isolation so it needs no download.
  "${pip[@]}" install --no-deps --no-build-isolation -e .
  rm -f "$stamp"
  echo "$want" >"$stamp"
  echo "setup.sh: done"
fi

# numactl pins each stream's CPUs and memory; without it the harness falls back
# to CPU affinity and says so.
if ! command -v numactl >/dev/null 2>&1; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "setup.sh: installing numactl with apt-get"
    if ! { apt-get install -y -qq numactl >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq numactl >/dev/null 2>&1; }; }; then
      echo "setup.sh: could not install numactl; streams will be pinned with CPU affinity instead"
    fi
  else
    echo "setup.sh: numactl is not installed and no usable package manager (root + apt-get); streams will be pinned with CPU affinity instead"
  fi
fi

if [[ "$with_dataset" == 1 ]]; then
  ./get_dataset.sh
fi
