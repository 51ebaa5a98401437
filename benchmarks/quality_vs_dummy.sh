#!/usr/bin/env bash
# Quality-mode model throughput against dummy mode at the same size, alternating
# runs so drift hits both alike. Prints one line per run, then the median ratio.
#   benchmarks/quality_vs_dummy.sh [ROUNDS] [DATASET_DIR]   (default 3, ../shared/data/mixed_448x256)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rounds=${1:-3}
data=${2:-../shared/data/mixed_448x256}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
read -r h w < <(.venv/bin/python -c "import cv2,sys; e=open('$data/tri_testlist.txt').read().split()[0]; \
im=cv2.imread('$data/sequences/'+e+'/im1.png'); print(*im.shape[:2])")
common=(--num-inputs 24 --warmup 2 --precision fp32 --platform cpu)
for r in $(seq 1 "$rounds"); do
  ./run_model.sh --dummy --data-height "$h" --data-width "$w" "${common[@]}" --output-dir "$out/d$r" >/dev/null
  ./run_model.sh --data "$data" "${common[@]}" --min-pass-pct 0 --output-dir "$out/q$r" >/dev/null
done
.venv/bin/python - "$out" "$rounds" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
d = [json.load(open(f"{out}/d{r}/results.json"))["metrics"] for r in range(1, rounds + 1)]
q = [json.load(open(f"{out}/q{r}/results.json"))["metrics"] for r in range(1, rounds + 1)]
for r in range(rounds):
    print(f"round {r+1}: dummy {d[r]['throughput_img_s']:.3f} img/s, quality model "
          f"{q[r]['model_throughput_img_s']:.3f} img/s, end to end {q[r]['end_to_end_throughput_img_s']:.3f} img/s")
md = statistics.median(x["throughput_img_s"] for x in d)
mq = statistics.median(x["model_throughput_img_s"] for x in q)
me = statistics.median(x["end_to_end_throughput_img_s"] for x in q)
print(f"median: dummy {md:.3f}, quality model {mq:.3f} (ratio {mq/md:.3f}), end to end {me:.3f} (ratio {me/md:.3f})")
PY
