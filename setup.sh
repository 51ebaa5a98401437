#!/usr/bin/env bash
# Create .venv with pinned dependencies. Idempotent: a second run with the same
# inputs only checks a stamp and exits.
#   TORCH_SPEC   pip requirement for torch, used as given (e.g. "torch==2.13.0 --index-url
#                https://download.pytorch.org/whl/cu128"); unset: torch==2.13.0 from the wheel
#                index for this machine (CUDA with an NVIDIA driver, XPU with an Intel GPU, else
#                CPU), or from the plain package index when that index is unreachable
#   --print-torch-source  say which torch build and index would be used, install nothing
#   VENV_DIR     where the environment goes (default .venv)
#   PYTHON       interpreter used to create it (default python3)
#   SETUP_DEV=1  also install the test tools, linters, docs tools and both CPU runtimes ("dev" extra)
#   --dev        same as SETUP_DEV=1;  --with-dataset  also run get_dataset.sh
#   --runtimes LIST  also install these RUNTIMEs (comma-separated: onnxruntime, openvino), with the
#                ONNX exporter they need (pyproject.toml's extras); SETUP_RUNTIMES=LIST does the same
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

dev=${SETUP_DEV:-0}
with_dataset=0
print_source=0
runtimes=${SETUP_RUNTIMES:-}
# The optional runtimes, each an extra of pyproject.toml (which pins it with the ONNX exporter it needs).
known_runtime() {
  case "$1" in
    onnxruntime|openvino) return 0 ;;
    *) return 1 ;;
  esac
}
while (($#)); do
  arg=$1
  shift
  case "$arg" in
    --dev) dev=1 ;;
    --runtimes) runtimes=${1:-}; shift || true ;;
    --runtimes=*) runtimes=${arg#--runtimes=} ;;
    --with-dataset) with_dataset=1 ;;
    --print-torch-source) print_source=1 ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup.sh: unknown argument '$arg' (accepted: --dev, --with-dataset, --runtimes LIST, --print-torch-source)" >&2; exit 2 ;;
  esac
done
for name in ${runtimes//,/ }; do
  if ! known_runtime "$name"; then
    echo "setup.sh: --runtimes: unknown runtime '$name' (accepted: onnxruntime, openvino; TensorRT needs a GPU" \
      "machine: see docs/runtimes.md)" >&2
    exit 2
  fi
done

venv=${VENV_DIR:-.venv}
python=${PYTHON:-python3}
# The harness's pins (numpy 2.4, matplotlib 3.11) need Python 3.11.
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  found=$("$python" --version 2>&1) || found="not runnable"
  echo "setup.sh: PYTHON=$python is ${found:-not runnable} (accepted: Python 3.11 or newer; set PYTHON)" >&2
  exit 2
fi

# The machine's accelerator, from the driver's files (RIFEBENCH_FAKE_ROOT prefixes /proc
# and /sys for tests): an unpinned torch from PyPI is the CUDA build, GBs of libraries.
machine_kind() {
  local root=${RIFEBENCH_FAKE_ROOT:-} vendor
  if [[ -e "$root/proc/driver/nvidia/version" ]] || command -v nvidia-smi >/dev/null 2>&1; then
    echo cuda; return
  fi
  for vendor in "$root"/sys/class/drm/renderD*/device/vendor; do
    if [[ -f "$vendor" && "$(<"$vendor")" == 0x8086 ]]; then echo xpu; return; fi
  done
  if command -v xpu-smi >/dev/null 2>&1; then echo xpu; return; fi
  echo cpu
}

# Sets torch_spec and torch_source: TORCH_SPEC as given, else the machine's wheel index when
# it answers, else the plain package index (pip's configuration: PyPI or local wheels).
pick_torch() {
  local kind base index
  if [[ -n "${TORCH_SPEC:-}" ]]; then
    torch_spec=$TORCH_SPEC; torch_source="TORCH_SPEC as given"; return
  fi
  kind=$(machine_kind)
  base=${RIFEBENCH_TORCH_INDEX:-https://download.pytorch.org/whl}
  case "$kind" in
    cuda) index="$base/${RIFEBENCH_TORCH_CUDA:-cu128}" ;;
    *) index="$base/$kind" ;;
  esac
  if "$python" - "$index/torch/" <<'PY' 2>/dev/null
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
    sys.exit(0 if r.status == 200 else 1)
PY
  then
    torch_spec="torch==2.13.0 --index-url $index"; torch_source="$kind build from $index"
  else
    torch_spec="torch==2.13.0"; torch_source="$kind machine, but $index is unreachable: plain package index"
  fi
}

if [[ "$print_source" == 1 ]]; then
  pick_torch
  echo "setup.sh: torch: $torch_spec ($torch_source)"
  exit 0
fi

want="${TORCH_SPEC:-torch==2.13.0/$(machine_kind)}|dev=$dev|runtimes=$runtimes|$(cat requirements.txt requirements-dev.txt pyproject.toml | sha256sum | cut -c1-16)"
stamp="$venv/.rifebench-setup"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "setup.sh: $venv is up to date (${TORCH_SPEC:-torch==2.13.0})"
else
  if [[ ! -x "$venv/bin/python" ]]; then
    echo "setup.sh: creating $venv with $($python --version 2>&1)"
    "$python" -m venv "$venv"
  fi
  pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
  pick_torch
  echo "setup.sh: installing $torch_spec ($torch_source)"
  # shellcheck disable=SC2086  # TORCH_SPEC may carry pip options (an --index-url)
  "${pip[@]}" install $torch_spec
  echo "setup.sh: installing requirements.txt"
  "${pip[@]}" install -r requirements.txt
  # Editable install of our package with the extras asked for (their pins are in pyproject.toml);
  # no build isolation, so that building it needs no download.
  extras=()
  if [[ "$dev" == 1 ]]; then extras+=(dev); fi
  for name in ${runtimes//,/ }; do
    extras+=("$name")
    if [[ "$name" == openvino ]]; then extras+=(int8); fi  # NNCF: PRECISION=int8 runs in OpenVINO
  done
  if ((${#extras[@]})); then
    target=".[$(IFS=,; echo "${extras[*]}")]"
    echo "setup.sh: installing rifebench with the extras ${extras[*]}"
    "${pip[@]}" install --no-build-isolation -e "$target"
  else
    "${pip[@]}" install --no-deps --no-build-isolation -e .
  fi
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
