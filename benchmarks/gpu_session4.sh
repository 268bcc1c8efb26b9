#!/usr/bin/env bash
# Session 7's device call (15 min of GPU in all). Issue #4's open question, "no loss at x1.0",
# needs more seeds than the CPU affords and a paired test pooled over them:
#   per seed 0-3, side by side (one stream each): plain 40 epochs; plain 40 + every lamp 40
#   epochs (fine-tune, peak lr 0.01); every lamp 160 epochs from scratch; plain 160 epochs if
#   time is left. Each network's logits on its validation and test images under brightness
#   x0.5-x1.45, and (relit networks) at input gains 0.6-1.0: benchmarks/experiments/lamp_logits.py.
#   The analysis (gain chosen on validation, McNemar pooled over seeds) runs offline on the CPU:
#   benchmarks/experiments/lamp_gain_analysis.py.
# First, alone on the GPU: benchmarks/bench_gpu_pinned.py (issue #6, pinned memory).
# The call: mkdir -p /tmp/data && tar xJf carry/data.tar.xz -C /tmp/data && DATA=/tmp/data bash benchmarks/gpu_session4.sh
# (four streams side by side ran three times slower each: the lamp-160 networks did not finish
# and seeds 0-1 were rerun two at a time.)
# Session 12's two calls, on one H100, each 6 min: `... gpu_session4.sh lamp160 2 3`, then
# `... gpu_session4.sh lamp160 4 5` on the warm machine: for each seed named, side by side, the
# every-lamp network of 160 epochs and the plain one of 40 (same seed, same split), and their
# logits; `lamp_gain_analysis.py DIR --relit lamp160s` pairs them (docs/results.md).
# DATA=/path SMOKE=1 runs it small on the CPU, to check the script before spending GPU time.
set -uo pipefail
export PYTHONPATH=src PYTHONUNBUFFERED=1 BLASTSCAN_CACHE=/tmp/bscache4
PY=${PY:-python3}; R=/tmp/runs4; D=${DATA:-/tmp/data}; OUT=${OUT:-/tmp/out}; DEADLINE=${DEADLINE:-530}
SEEDS=${SEEDS:-0 1 2 3}
mkdir -p $R $OUT
QUICK=(); LOGITS=()
if [ "${SMOKE:-0}" = 1 ]; then QUICK=(--epochs 1 --max-per-class 12); LOGITS=(--brightness 0.8 1.0); fi
late() { [ $SECONDS -gt $((DEADLINE - $1)) ]; }
net() {  # net NAME LOGIT_FLAGS ARGS...: train (fast recipe), then dump its logits
  local name=$1 flags=$2; shift 2
  $PY -m blastscan train --data $D --out $R/$name --quiet --recipe fast "$@" "${QUICK[@]}" > $R/$name.log 2>&1
  echo "[$SECONDS s] $name $* :: $(tail -1 $R/$name.log)"
  $PY benchmarks/experiments/lamp_logits.py $R/$name $D $R/$name.logits.npz $flags "${LOGITS[@]}" >> $R/$name.log 2>&1
  echo "[$SECONDS s] $name logits :: $(tail -1 $R/$name.log)"
}
pack() {  # pack SEED: that seed's run directories without weights, atomically
  (cd $R && tar czf $OUT/.s$1.tmp --exclude='*.safetensors' --exclude='*.onnx' --exclude=bundle \
    --exclude=checkpoints *s$1 *s$1.log *s$1.logits.npz 2>/dev/null; mv $OUT/.s$1.tmp $OUT/seed$1.tar.gz)
}
stream() {  # stream SEED: the networks of one seed, longest last, none started past the deadline
  local s=$1 lamp=(--brighten 0.45 --darken 0.45)
  net plain40s$s "" --epochs 40 --seed $s
  net ft40s$s --gains --epochs 40 --seed $s --lr 0.01 "${lamp[@]}" \
    --pretrained $R/plain40s$s/checkpoints/final.safetensors
  pack $s
  late 230 && { echo "seed $s: deadline, no lamp160"; return; }
  net lamp160s$s --gains --epochs 160 --seed $s "${lamp[@]}"
  pack $s
  late 230 && { echo "seed $s: deadline, no plain160"; return; }
  net plain160s$s "" --epochs 160 --seed $s
  pack $s
}

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  $PY -c "import torch; print('torch', torch.__version__)"; nproc; } 2>&1 | tee $OUT/machine.txt
# Decode every image once (the streams would race to build the same cache), beside the
# pinned-memory benchmark, which uses random images.
$PY -c "from blastscan import data as D; D.load_images(D.scan_dataset('$D', 'Original'), 128)" &
if [ "${1:-}" = lamp160 ]; then  # lamp160 SEED...: two seeds side by side use the host's CPUs
  shift; wait; export OMP_NUM_THREADS=8
  pair() {  # pair SEED: the every-lamp network of 160 epochs and the plain one of 40
    net lamp160s$1 "" --epochs 160 --seed $1 --brighten 0.45 --darken 0.45
    net plain40s$1 "" --epochs 40 --seed $1
    pack $1
  }
  for s in "${@:-2}"; do pair $s & done; wait
  echo "[$SECONDS s] done"; ls -la $OUT; exit
fi
[ "${SMOKE:-0}" = 1 ] || $PY benchmarks/bench_gpu_pinned.py > $OUT/pinned.json 2>&1
cat $OUT/pinned.json 2>/dev/null; wait
echo "[$SECONDS s] cache and pinned benchmark done"
export OMP_NUM_THREADS=4
for s in $SEEDS; do stream $s & done
wait
echo "[$SECONDS s] done"; ls -la $OUT
