#!/usr/bin/env bash
# One call that measures the harness on a GPU machine: a fixed list of steps,
# each a run of `python -m rifebench` (or harness_overhead.py) under its own
# timeout, summed up in one markdown table. A step that fails or times out is a
# row that says so; the script goes on. The table and the archive of every
# run's files are rewritten after each step, so a killed script loses nothing.
#
#   benchmarks/gpu_check.sh --out DIR [--weights-dir DIR] [--data DIR] [--python PY]
#                           [--budget S] [--steps "4 10 11"] [--dry-run]
#
# Writes DIR/gpu_check.md (the table), DIR/gpu_check.tar.gz (runs/<step>/
# results.json, results.yaml, output.log, console.log) and DIR/gpu_check.log.
# Needs no .venv: the package runs as `PY -m rifebench` with PYTHONPATH=src.
# 4.6 and paper use WEIGHTS_DIR/rife-<model>/flownet.pkl when present, else
# seeded random weights of the official shapes (the speed is the same).
# --dry-run: the same code on the CPU at 64x96 with a few fast steps (no
# torch.compile), to keep this script working; see DRY_STEPS. --steps runs only
# the steps listed (say, those a first call SKIPPED for want of time).
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DRY_STEPS=" 1 8 11 18 19 20 "
CPU_PSNR_DB=34.640  # 4.0 fp32 on ucf101_256x256, measured on the CPU

out="" weights_dir="gpu_carry/model" data="gpu_carry/ucf101_256x256" py="python3" dry=0 budget="" only=""
usage() { sed -n '8,9p' "${BASH_SOURCE[0]}" | sed 's/^# *//' >&2; }
while (($#)); do
  case "$1" in
    --out) out="${2-}"; shift ;;
    --weights-dir) weights_dir="${2-}"; shift ;;
    --data) data="${2-}"; shift ;;
    --python) py="${2-}"; shift ;;
    --budget) budget="${2-}"; shift ;;
    --steps) only=" ${2-} "; only="${only//,/ }"; shift ;;
    --dry-run) dry=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu_check.sh: unknown option '$1'" \
         "(accepted: --out, --weights-dir, --data, --python, --budget, --steps, --dry-run)" >&2
       exit 2 ;;
  esac
  shift
done
[[ -n "$out" ]] || { echo "gpu_check.sh: --out DIR is required" >&2; usage; exit 2; }
if [[ -n "$only" && ! "$only" =~ ^[\ 0-9]+$ ]]; then
  echo "gpu_check.sh: --steps must list step numbers 1-23, got '${only# }'" >&2; exit 2
fi
if [[ -n "$budget" && ! "$budget" =~ ^[0-9]+$ ]]; then
  echo "gpu_check.sh: --budget must be a whole number of seconds, got '$budget'" >&2; exit 2
fi
command -v "$py" >/dev/null || { echo "gpu_check.sh: --python '$py' is not a command" >&2; exit 2; }
mkdir -p "$out" || { echo "gpu_check.sh: --out '$out' cannot be created" >&2; exit 2; }
out="$(cd "$out" && pwd)"
# Paths are resolved before the cd below, so relative ones mean what the caller meant.
[[ -d "$weights_dir" ]] && weights_dir="$(cd "$weights_dir" && pwd)"
[[ -d "$data" ]] && data="$(cd "$data" && pwd)"
cd "$repo" || exit 2
export PYTHONPATH="$repo/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/runs" "$work/weights"
log="$out/gpu_check.log"
: >"$log"
: >"$work/steps.tsv"
say() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" | tee -a "$log"; }

# Workload per mode: GPU figures at real sizes; the dry run only proves the plumbing.
if ((dry)); then
  platform=cpu half=fp32 h=64 w=96 h_big=64 w_big=96 step_s=60 compile_s=60 slow_s=60 quality_s=90 overhead_s=120
  budget="${budget:-600}" streams=(1 2) batches=(1 2)
  dummy=(--dummy --platform cpu --num-inputs 2 --warmup 1 --min-test-duration 0)
  series=("${dummy[@]}")
  overhead=(--rounds 1 --pairs 2 --warmup 1)
else
  platform=cuda half=fp16 h=720 w=1280 h_big=1080 w_big=1920 step_s=60 compile_s=120 slow_s=150 quality_s=90
  overhead_s=150 budget="${budget:-440}" streams=(1 2 4) batches=(1 4 8 16)
  dummy=(--dummy --platform cuda --num-inputs 1 --warmup 10 --min-test-duration 5)
  series=(--dummy --platform cuda --num-inputs 1 --warmup 10 --min-test-duration 3)
  overhead=(--rounds 3 --pairs 200)
fi
start=$SECONDS
declare -A rc_of=() noted=()

{
  echo "# gpu_check: rifebench on ${HOSTNAME:-an unnamed host}"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)$( ((dry)) && echo ' (DRY RUN on the CPU: plumbing only, no figures)')"
  versions='import torch; print(torch.__version__, "CUDA", torch.version.cuda, "cuDNN", torch.backends.cudnn.version())'
  echo "- torch: $(timeout 120 "$py" -c "$versions" 2>&1 | tail -n 1)"
  if command -v nvidia-smi >/dev/null; then
    echo "- nvidia-smi -L:"
    timeout 30 nvidia-smi -L 2>&1 | sed 's/^/  - /'
  else
    echo "- nvidia-smi: not found"
  fi
  echo "- dummy steps add: ${dummy[*]} (steps 7-9 and 11-13: ${series[*]}); size ${w}x${h} unless given"
  echo "- quality steps: --platform $platform --data $data"
  echo "- budget: ${budget} s for all steps, in the order run (cheap steps first); a step that does not fit is SKIPPED"
} >"$work/header.md"

not_chosen() {  # ID: true for a step this call does not run
  [[ -n "$only" && "$only" != *" $1 "* ]] && return 0
  [[ $dry -eq 1 && "$DRY_STEPS" != *" $1 "* ]]
}

# weights_for MODEL: sets wpath to its weights file, making random ones when absent.
weights_for() {
  wpath="$weights_dir/rife-$1/flownet.pkl"
  if [[ -f "$wpath" || "$1" == 4.0 ]]; then
    [[ -n "${noted[$1]-}" ]] || echo "- $1 weights: $wpath$([[ -f "$wpath" ]] || echo ' (MISSING)')" >>"$work/header.md"
    noted[$1]=1
    return 0
  fi
  wpath="$work/weights/rife-$1.pkl"
  [[ -f "$wpath" ]] && return 0
  ((budget - (SECONDS - start) >= 20)) || return 0  # its step will be SKIPPED anyway
  say "making random $1 weights"
  if timeout 120 "$py" benchmarks/random_weights.py --model "$1" --out "$wpath" --seed 0 >>"$log" 2>&1; then
    echo "- $1 weights: random of the official shapes (seed 0)" >>"$work/header.md"
  else
    say "random $1 weights failed (see above); its steps will fail"
  fi
}

publish() {
  "$py" benchmarks/gpu_table.py "$work" "$out/gpu_check.md" --ref-psnr "$CPU_PSNR_DB" >>"$log" 2>&1 \
    || say "gpu_table.py failed (see above)"
  tar -czf "$out/gpu_check.tar.gz.part" -C "$work" header.md steps.tsv runs >>"$log" 2>&1 \
    && mv -f "$out/gpu_check.tar.gz.part" "$out/gpu_check.tar.gz"
}

record() {  # id rundir rc seconds kind flags...
  local id=$1 dir=$2 rc=$3 secs=$4 kind=$5
  shift 5
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$id" "$dir" "$rc" "$secs" "$kind" "$*" >>"$work/steps.tsv"
  rc_of[$id]=$rc
  publish
}

# run_step ID KIND TIMEOUT SHOWN_FLAGS_COUNT CMD...: runs CMD under min(TIMEOUT, time left);
# the last SHOWN_FLAGS_COUNT words of CMD are the step's own flags, shown in the table.
run_step() {
  local id=$1 kind=$2 limit=$3 shown=$4
  shift 4
  local cmd=("$@") dir="$work/runs/$id" left=$((budget - (SECONDS - start)))
  local flags=("${cmd[@]: -$shown}")
  if ((left < 20)); then
    say "step $id: SKIPPED, ${left} s of the ${budget} s budget left"
    record "$id" "runs/$id" skip 0 "$kind" "${flags[@]}"
    return 0
  fi
  ((limit > left)) && limit=$left
  mkdir -p "$dir"
  say "step $id ($kind, timeout ${limit} s): ${flags[*]}"
  local t0=$SECONDS rc
  timeout -k 10 "$limit" "${cmd[@]}" >"$dir/console.log" 2>&1
  rc=$?
  cat "$dir/console.log" >>"$log"
  say "step $id: exit $rc after $((SECONDS - t0)) s"
  record "$id" "runs/$id" "$rc" "$((SECONDS - t0))" "$kind" "${flags[@]}"
}

harness() {  # ID TIMEOUT MODEL COMMON_ARRAY_NAME FLAGS...
  local id=$1 limit=$2 model=$3
  local -n common=$4
  shift 4
  not_chosen "$id" && return 0
  weights_for "$model"
  run_step "$id" harness "$limit" $(($# + 2)) "$py" -m rifebench "${common[@]}" --output-dir "$work/runs/$id" \
    --pretrained-weights "$wpath" --model "$model" "$@"
}

quality() {  # ID PRECISION
  not_chosen "$1" && return 0
  weights_for 4.0
  run_step "$1" quality "$quality_s" 8 "$py" -m rifebench --platform "$platform" --output-dir "$work/runs/$1" \
    --pretrained-weights "$wpath" --data "$data" --model 4.0 --precision "$2" --num-inputs 100 --warmup 1
}

overhead_step() {  # ID
  not_chosen "$1" && return 0
  weights_for 4.6
  run_step "$1" overhead "$overhead_s" $((${#overhead[@]} + 10)) "$py" benchmarks/harness_overhead.py \
    --output-dir "$work/runs/$1" --weights "$wpath" --model 4.6 --platform "$platform" --precision "$half" \
    --height "$h_big" --width "$w_big" "${overhead[@]}"
}

alias_step() {  # ID SAME_AS FLAGS...: the same flags as an earlier step: its run, not a second one
  local id=$1 same=$2
  shift 2
  not_chosen "$id" && return 0
  [[ -n "${rc_of[$same]-}" ]] || return 0
  record "$id" "runs/$same" "${rc_of[$same]}" 0 "same as $same" "$@"
}

size=(--data-height "$h" --data-width "$w")
big=(--data-height "$h_big" --data-width "$w_big")
graphs=(--cuda-graphs yes --channels-last yes --cudnn-benchmark yes)
say "gpu_check: out $out, weights $weights_dir, data $data, python $py, budget ${budget} s" \
  "$( ((dry)) && echo '(dry run)')"
# Cheap and eager steps first, torch.compile last: if the budget runs out it is the slow ones that go.
harness 1 "$step_s" 4.0 dummy "${size[@]}"
harness 2 "$step_s" 4.6 dummy --precision "$half" "${size[@]}"
harness 3 "$step_s" 4.6 dummy --precision fp32 "${size[@]}"
harness 5 "$step_s" 4.6 dummy --precision "$half" "${size[@]}" --compile none "${graphs[@]}"
for i in "${!streams[@]}"; do
  harness $((7 + i)) "$step_s" 4.6 series --precision "$half" "${size[@]}" --streams "${streams[$i]}"
done
harness 15 "$step_s" paper dummy --precision "$half" "${size[@]}"
quality 17 "$half"
quality 18 fp32
overhead_step 19
# Runtimes (docs/runtimes.md): the device machine has no network, so these run only where
# onnxruntime-gpu / TensorRT were installed beforehand; elsewhere the row is exit 2 with its install command.
harness 20 "$step_s" 4.6 dummy --precision "$half" "${size[@]}" --runtime onnxruntime
harness 22 "$step_s" 4.6 dummy --precision "$half" "${big[@]}" --runtime onnxruntime
harness 21 "$compile_s" 4.6 dummy --precision "$half" "${size[@]}" --runtime tensorrt
harness 23 "$compile_s" 4.6 dummy --precision "$half" "${big[@]}" --runtime tensorrt
harness 4 "$compile_s" 4.6 dummy --precision "$half" "${size[@]}" --optimize optimized
for i in "${!batches[@]}"; do
  if [[ $dry -eq 0 && ${batches[$i]} -eq 1 && -n "${rc_of[4]-}" ]]; then
    alias_step $((10 + i)) 4 --model 4.6 --precision "$half" "${size[@]}" --optimize optimized --batch-size 1
  else
    harness $((10 + i)) "$compile_s" 4.6 series --precision "$half" "${size[@]}" --optimize optimized \
      --batch-size "${batches[$i]}"
  fi
done
harness 14 "$compile_s" 4.6 dummy --precision "$half" "${big[@]}" --optimize optimized
harness 16 "$compile_s" paper dummy --precision "$half" "${size[@]}" --optimize optimized
harness 6 "$slow_s" 4.6 dummy --precision "$half" "${size[@]}" --compile max-autotune-no-cudagraphs "${graphs[@]}"

publish
say "done in $((SECONDS - start)) s"
cat "$out/gpu_check.md"
