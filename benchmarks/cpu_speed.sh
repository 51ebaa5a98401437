#!/usr/bin/env bash
# Issue 24's measured table (docs/runtimes.md): models 4.0 (official weights) and 4.6 (seeded random
# weights of its official shapes when model/rife-4.6/flownet.pkl is absent) at 448x256 and 1280x720,
# every CPU runtime and precision, measured side by side in one study per model (alternated rounds):
# pairs/s and speed-up against eager PyTorch fp32 with 95% intervals, PSNR against fp32's output, and
# for 4.0 the UCF101 mean PSNR (bundled triplets, against the ground truth) and its drop against torch
# fp32. Then OpenVINO's THROUGHPUT hint against our own STREAMS (`rifebench tune` on 4.0 at 448x256) and
# ONNX Runtime's static INT8 (QDQ) against its fp32 (benchmarks/ort_qdq.py), and OpenVINO's own per-layer
# report of where the time goes (benchmarks/ov_profile.py). Everything lands
# in one markdown file, OUT_DIR/cpu_speed.md.
#   benchmarks/cpu_speed.sh [OUT_DIR]     (default ./output/cpu-speed-<UTC timestamp>)
#   ROUNDS=6  PAIRS=1  THREADS=(the CPUs this shell may use)  UCF_DIR=../shared/data/ucf101_256x256
#   UCF_TRIPLETS=50  SKIP_TUNE=0  SKIP_QDQ=0  SKIP_PROFILE=0
# About 20 minutes on 2 quiet cores; the first run also exports and quantizes (cached beside the weights,
# a few minutes more). Run it on a quiet machine: a run while another job uses the cores is not a
# measurement. Without the UCF101 triplets (UCF_DIR), the ground-truth columns are left out.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
py=.venv/bin/python
out=${1:-output/cpu-speed-$(date -u +%Y%m%dT%H%M%SZ)}
ucf=${UCF_DIR:-../shared/data/ucf101_256x256}
rounds=${ROUNDS:-6} pairs=${PAIRS:-1}
mkdir -p "$out"

w40=model/rife-4.0/flownet.pkl
[[ -f "$w40" ]] || ./get_model.sh --model 4.0 >&2
w46=model/rife-4.6/flownet.pkl
if [[ ! -f "$w46" ]]; then
  w46=$out/weights-4.6-random/flownet.pkl
  mkdir -p "$(dirname "$w46")"
  "$py" benchmarks/random_weights.py --model 4.6 --out "$w46" --seed 0 >&2
fi

configs=(--configs "torch_fp32,torch_bf16,ort_fp32,ov_fp32,ov_bf16,ov_int8"
         --config "torch_fp32=" --config "torch_bf16=--precision bf16"
         --config "ort_fp32=--runtime onnxruntime" --config "ov_fp32=--runtime openvino"
         --config "ov_bf16=--runtime openvino --precision bf16"
         --config "ov_int8=--runtime openvino --precision int8")
common=(--sizes "448x256,1280x720" --rounds "$rounds" --pairs "$pairs" --force)
if [[ -n "${THREADS:-}" ]]; then common+=(--threads "$THREADS"); fi
rc=0
# 4.0: the UCF101 ground truth too (untimed, after the rounds). 4.6 with random weights: speed and
# fidelity to its fp32 output only.
truth=()
if [[ -d "$ucf" ]]; then truth=(--data "$ucf" --data-triplets "${UCF_TRIPLETS:-50}"); else
  echo "cpu_speed.sh: $ucf not found (UCF_DIR): no ground-truth PSNR in the table" >&2; fi
"$py" -m rifebench study --model 4.0 --pretrained-weights "$w40" "${configs[@]}" "${common[@]}" \
  "${truth[@]}" --output-dir "$out/study-4.0" >"$out/study-4.0.log" 2>&1 || rc=1
"$py" -m rifebench study --model 4.6 --pretrained-weights "$w46" "${configs[@]}" "${common[@]}" \
  --output-dir "$out/study-4.6" >"$out/study-4.6.log" 2>&1 || rc=1

if [[ "${SKIP_TUNE:-0}" != 1 && -d "$ucf" ]]; then
  # OpenVINO's own streams (THROUGHPUT hint, batch 2 over its requests) against ours (STREAMS=2).
  "$py" -m rifebench tune --model 4.0 --pretrained-weights "$w40" --size 448x256 --data "$ucf" \
    --quality-pairs 24 --runtimes openvino --precisions fp32,bf16 --streams 1,2 --batches 1,2 \
    --rounds "$rounds" --min-psnr-drop 0.2 --output-dir "$out/tune-ov" --force >"$out/tune-ov.log" 2>&1 || rc=1
fi
if [[ "${SKIP_QDQ:-0}" != 1 ]]; then
  # ONNX Runtime's own static INT8 (QDQ) against its fp32, to say whether it pays (it is refused in runs).
  for model in 4.0 4.6; do
    w=$w40; [[ $model == 4.6 ]] && w=$w46
    "$py" benchmarks/ort_qdq.py --weights "$w" --model "$model" --size 448x256 --rounds "$rounds" \
      >"$out/ort-qdq-$model.md" 2>"$out/ort-qdq-$model.log" || rc=1
  done
fi
if [[ "${SKIP_PROFILE:-0}" != 1 ]]; then
  "$py" benchmarks/ov_profile.py --weights "$w40" --model 4.0 --size 448x256 --precisions fp32,bf16,int8 \
    >"$out/profile-4.0.md" 2>"$out/profile-4.0.log" || rc=1
  # 4.0's large-motion If inside OpenVINO (what fp32 and bf16 run) against the three graphs (what int8 runs).
  "$py" benchmarks/ov_profile.py --weights "$w40" --model 4.0 --size 448x256 --precisions fp32,bf16 \
    --pairs 12 --compare-if >"$out/if-vs-split.md" 2>"$out/if-vs-split.log" || rc=1
fi

"$py" - "$out" "$rc" <<'PY'
import json, pathlib, sys

out, rc = pathlib.Path(sys.argv[1]), int(sys.argv[2])

def ci(x, c, unit=""):
    return "n/a" if x is None else f"{x:.2f}{unit}" + (f" [{c[0]:.2f}, {c[1]:.2f}]" if c else "")

md = ["# CPU speed: runtimes and precisions (issue 24)", "",
      "| model | size | config | precision | pairs/s [95% CI] | speed-up vs torch fp32 [95% CI] | "
      "PSNR vs fp32 output dB | UCF101 mean PSNR dB | drop vs torch fp32 dB |", "|---|---|---|---|---|---|---|---|---|"]
cpu = None
for model in ("4.0", "4.6"):
    path = out / f"study-{model}" / "study.json"
    if not path.is_file():
        md.append(f"| {model} | | study failed: see study-{model}.log | | | | | | |")
        continue
    doc = json.loads(path.read_text())
    cpu = cpu or f"{doc['cpu']}, {doc['threads']} threads, {doc['rounds']} rounds of {doc['pairs']} pair(s)"
    ref_ucf = {}
    for r in doc["rows"]:
        dq = (r.get("dataset_quality") or {}).get("psnr_db")
        if r["config"] == "torch_fp32" and dq is not None:
            ref_ucf[r["size"]] = dq
    for r in doc["rows"]:
        q, dq = r.get("quality") or {}, (r.get("dataset_quality") or {}).get("psnr_db")
        if r.get("error"):
            md.append(f"| {model} | {r['size']} | {r['config']} | {r.get('precision')} | failed: {r['error']} |||||")
            continue
        fid = "identical" if q.get("identical") else ("n/a" if q.get("psnr_db") is None else f"{q['psnr_db']:.1f}")
        drop = "n/a" if dq is None or r["size"] not in ref_ucf else f"{ref_ucf[r['size']] - dq:+.3f}"
        md.append(f"| {model} | {r['size']} | {r['config']} | {r.get('precision')} | {ci(r.get('fps'), r.get('fps_ci95'))} | "
                  f"{ci(r.get('speedup'), r.get('speedup_ci95'), 'x')} | {fid} | "
                  f"{'n/a' if dq is None else f'{dq:.3f}'} | {drop} |")
md += ["", f"{cpu or 'no study finished'}. 4.6 runs seeded random weights of its official shapes when its "
       "weights are absent: its PSNR columns against the ground truth are then n/a. UCF101: the bundled "
       "ucf101_256x256 triplets at their own size, after the timed rounds.", ""]
for name, title in (("tune-ov/tune.md", "OpenVINO THROUGHPUT hint (its own streams) against our STREAMS"),
                    ("ort-qdq-4.0.md", "ONNX Runtime static INT8 (QDQ) against its fp32: 4.0, 448x256"),
                    ("ort-qdq-4.6.md", "ONNX Runtime static INT8 (QDQ) against its fp32: 4.6, 448x256"),
                    ("profile-4.0.md", "Where the time goes: OpenVINO's per-layer report (4.0, 448x256)"),
                    ("if-vs-split.md", "4.0 in OpenVINO: the If graph against the three graphs")):
    f = out / name
    md += [f"## {title}", "", f.read_text().strip() if f.is_file() and f.stat().st_size else "(not run or failed)", ""]
if rc:
    md.append("(a step exited with an error: see the .log files beside this file)")
(out / "cpu_speed.md").write_text("\n".join(md) + "\n")
print(out / "cpu_speed.md")
PY
exit "$rc"
