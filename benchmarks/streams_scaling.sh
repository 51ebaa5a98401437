#!/usr/bin/env bash
# Throughput of 1 and N streams in dummy mode, alternated, with the scaling
# efficiency median(N-stream) / (N x median(1-stream)).
#   benchmarks/streams_scaling.sh [ROUNDS] [N] [SECONDS]   (default 3 2 20; 256x448 fp32)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rounds=${1:-3}; n=${2:-2}; secs=${3:-20}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for r in $(seq 1 "$rounds"); do
  for s in 1 "$n"; do
    STREAMS=$s ./run_model.sh --dummy --data-height 256 --data-width 448 --precision fp32 --warmup 3 \
      --num-inputs 1 --min-test-duration "$secs" --output-dir "$out/s${s}_$r" >/dev/null
  done
done
.venv/bin/python - "$out" "$rounds" "$n" <<'PY'
import json, statistics, sys
out, rounds, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
res = {s: [json.load(open(f"{out}/s{s}_{r}/results.json")) for r in range(1, rounds + 1)] for s in (1, n)}
for s, docs in res.items():
    for r, d in enumerate(docs, 1):
        per = [round(x["throughput"], 3) for x in d["streams"]]
        print(f"{s} stream(s), round {r}: {d['metrics']['throughput_img_s']:.3f} img/s (per stream {per}), "
              f"overlap {d['metrics']['window']['overlap_pct']:.1f}%, warnings {len(d['warnings'])}")
m1 = statistics.median(d["metrics"]["throughput_img_s"] for d in res[1])
mn = statistics.median(d["metrics"]["throughput_img_s"] for d in res[n])
print(f"median: 1 stream {m1:.3f} img/s, {n} streams {mn:.3f} img/s, scaling efficiency {mn / (n * m1):.2f}")
PY
