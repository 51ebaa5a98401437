#!/usr/bin/env bash
# Run every row of a CSV profile as one run of run_model.sh, on bare metal or,
# with IMAGE set, in that container image; then summary.csv, summary.md, plots.
#   PROFILE=profiles/cpu.csv ./benchmark.sh            (or --profile CSV)
#   OUTPUT_DIR   benchmark folder (default ./output/benchmark-<timestamp>); one test_<n>/ per row
#   IMAGE        run every row with `docker run ... IMAGE ./run_model.sh` (see docker/README.md)
#   CONTAINER_ENGINE  docker or podman for IMAGE (default: the first on PATH)
#   OVERWRITE=1  reuse a non-empty OUTPUT_DIR (--force); otherwise it is refused
#   INVENTORY=no skip svr-info / PerfSpect even when on PATH (--no-inventory)
#   DOCKER_ARGS  extra `docker run`/`podman run` arguments (split like a shell would, never evaluated)
# Any option variable of ./run_model.sh --help set here applies to every row a
# profile cell does not set. Exit status: 0 all rows passed, 1 a row failed,
# 2 bad profile or options (nothing ran), 130 interrupted.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${VENV_DIR:-$here/.venv}"

usable() { [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c "import rifebench.bench, matplotlib" >/dev/null 2>&1; }

# --help comes from the Python tool (one text); this header only stands in for it when
# there is no environment yet, so that asking for help never runs setup.sh.
for arg in "$@"; do
  case "$arg" in
    -h|--help) if ! usable; then sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0; fi ;;
  esac
done

if ! usable; then
  echo "benchmark.sh: no usable environment in $venv; running setup.sh" >&2
  VENV_DIR="$venv" "$here/setup.sh" >&2
fi
exec "$venv/bin/python" -m rifebench.bench "$@"
