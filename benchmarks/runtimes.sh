#!/usr/bin/env bash
# Runtimes on this CPU (docs/runtimes.md). 1) The study alternates torch fp32 (the reference), torch bf16,
# onnxruntime fp32, openvino fp32 and openvino bf16 in one run, at 448x256 and 1280x720: FPS, speed-up and
# PSNR against torch fp32. 2) A quality run on UCF101 per CPU runtime: its mean PSNR against torch's
# (target: equal within 0.01 dB) and its parity figure. Everything lands in OUT_DIR/runtimes.md.
#   benchmarks/runtimes.sh [OUT_DIR]     (default ./output/runtimes-<UTC timestamp>)
#   MODEL=4.0  WEIGHTS=model/rife-$MODEL/flownet.pkl (4.0 fetched if absent; 4.6: seeded random weights)
#   SIZES=448x256,1280x720  ROUNDS=8  PAIRS=1  THREADS=(the CPUs this shell may use)
#   UCF_DIR=../shared/data/ucf101_256x256  UCF_PAIRS=50 (NUM_INPUTS of each quality run; 0 skips them)
# Exports are cached beside the weights; a size's first export (seconds to a minute) is never timed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
py=.venv/bin/python
model=${MODEL:-4.0}
out=${1:-output/runtimes-$(date -u +%Y%m%dT%H%M%SZ)}
weights=${WEIGHTS:-model/rife-$model/flownet.pkl}
ucf=${UCF_DIR:-../shared/data/ucf101_256x256}
ucf_pairs=${UCF_PAIRS:-50}
mkdir -p "$out"
if [[ ! -f "$weights" ]]; then
  if [[ "$model" == 4.6 ]]; then
    "$py" benchmarks/random_weights.py --model 4.6 --out "$weights" --seed 0
  else
    ./get_model.sh --model "$model"
  fi
fi

study=(--model "$model" --pretrained-weights "$weights" --sizes "${SIZES:-448x256,1280x720}"
       --rounds "${ROUNDS:-8}" --pairs "${PAIRS:-1}" --output-dir "$out/study" --force
       --configs "torch_fp32,torch_bf16,ort_fp32,ov_fp32,ov_bf16"
       --config "torch_fp32=" --config "torch_bf16=--precision bf16" --config "ort_fp32=--runtime onnxruntime"
       --config "ov_fp32=--runtime openvino" --config "ov_bf16=--runtime openvino --precision bf16")
if [[ -n "${THREADS:-}" ]]; then study+=(--threads "$THREADS"); fi
study_rc=0
"$py" -m rifebench study "${study[@]}" >"$out/study.stdout" || study_rc=$?

quality=()
if [[ "$ucf_pairs" != 0 ]]; then
  for run in torch:fp32 onnxruntime:fp32 openvino:fp32 openvino:bf16; do
    rt=${run%%:*}; prec=${run#*:}
    # A failed verdict (random weights) is still a figure: the exit status is read from results.json.
    ./run_model.sh --data "$ucf" --model "$model" --pretrained-weights "$weights" --runtime "$rt" \
      --precision "$prec" --num-inputs "$ucf_pairs" --warmup 1 --output-dir "$out/ucf_${rt}_$prec" \
      >"$out/ucf_${rt}_$prec.log" 2>&1 || true
    quality+=("$out/ucf_${rt}_$prec")
  done
fi

"$py" - "$out" "$study_rc" "${quality[@]}" <<'PY'
import json, pathlib, sys

out, study_rc, runs = pathlib.Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
md = ["# Runtimes measured on this CPU", ""]
study = out / "study" / "study.md"
md += (study.read_text().splitlines()[2:] if study.is_file() else ["study failed: see study.stdout"]) + [""]
if study_rc:
    md += [f"(the study exited with status {study_rc}: a configuration failed; see its row)", ""]
if runs:
    docs = {r: json.loads((pathlib.Path(r) / "results.json").read_text()) for r in runs
            if (pathlib.Path(r) / "results.json").is_file()}
    ref = next((d["quality"]["psnr_mean"] for r, d in docs.items() if r.endswith("ucf_torch_fp32")
                and d.get("quality")), None)
    md += ["| runtime | precision | mean PSNR (dB) | vs torch fp32 (dB) | within 0.01 dB | parity (dB) | "
           "throughput (img/s) | status |", "|---|---|---|---|---|---|---|---|"]
    for r in runs:
        name = pathlib.Path(r).name.removeprefix("ucf_")
        d = docs.get(r)
        if d is None or not d.get("quality"):
            md.append(f"| {name} | | failed: see {name}.log |||||")
            continue
        q, rt = d["quality"], d.get("runtime") or {}
        par = (rt.get("parity") or {})
        diff = None if ref is None else q["psnr_mean"] - ref
        md.append(f"| {d['config']['runtime']} | {d['config']['precision']} | {q['psnr_mean']:.4f} | "
                  f"{'' if diff is None else f'{diff:+.4f}'} | {'' if diff is None else abs(diff) <= 0.01} | "
                  f"{'identical' if par.get('identical') else format(par.get('psnr_db') or 0, '.1f')} | "
                  f"{d['metrics']['throughput_img_s']:.2f} | {d['status']} |")
text = "\n".join(md) + "\n"
(out / "runtimes.md").write_text(text)
print(text)
PY
echo "runtimes.sh: results in $out (runtimes.md, study/, ucf_*/)" >&2
