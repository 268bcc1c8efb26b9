#!/usr/bin/env bash
# Jobs for one rented GPU machine (the device tool: its working tree travels under 64 MB, the
# files written under $OUT come back, 16 MiB at most each). Every job writes as it goes, each
# file atomically, so a call cut at its time limit still returns what finished.
#
#   bash benchmarks/device.sh bench
#       machine facts, then `run_all.py --suite gpu` (inference bf16 vs fp32, pinned memory)
#   bash benchmarks/device.sh train [--features] [--robustness PERTURBATION|all] [--logits]
#                                   [--gains] [--name NAME] RECIPE SEED... [-- TRAIN_ARGS...]
#       one network per seed, side by side (CPU threads shared out), `blastscan train --recipe
#       RECIPE --seed SEED TRAIN_ARGS`, named NAME<seed> (default RECIPE, e.g. paper0); then,
#       as asked: features of every image (--features: OUT/NAME<seed>-features.npz), a
#       robustness sweep (--robustness brightness, or all perturbations), the logits under
#       every lamp (--logits, with input gains: --gains; experiments/lamp_logits.py)
#   bash benchmarks/device.sh strict [RECIPE]
#       the strict protocol's 5 outer-fold CNNs (default the paper recipe), one after another,
#       each one's features of every image: OUT/strict-{0,1,2}.npz, two folds per file, float16
#   bash benchmarks/device.sh lamp SEED...
#       per seed, side by side: plain 40 epochs; plain 40 + every lamp 40 (fine-tune, peak lr
#       0.01); every lamp 160 epochs from scratch; plain 160 if time is left; each network's
#       logits (relit ones at input gains 0.6-1.0 too) for experiments/lamp_gain_analysis.py
#   bash benchmarks/device.sh lamp160 SEED...
#       per seed, side by side: every lamp 160 epochs and plain 40 (same seed, same split), and
#       their logits; `lamp_gain_analysis.py DIR --relit lamp160s` pairs them (docs/results.md)
#   bash benchmarks/device.sh weights RUN_NAME
#       a run's final weights as fp16 safetensors in parts under 15 MB, and its final.json
#
# The dataset travels as carry/data.tar.xz (benchmarks/pack_dataset.sh makes it); it is
# unpacked to /tmp/data on first use (DATA=DIR uses a dataset already there). Each run's
# directory comes back as OUT/<name>.tar.gz without weights, features or bundle.
# Environment: DATA, OUT (default /tmp/out), PY (python3), DEADLINE (seconds after which no
# new network starts, default 530), SMOKE=1 (1 epoch, 12 images per class: checks the script
# on the CPU before spending GPU time), e.g. DATA=../shared/data/all-idb-taleqani SMOKE=1.
# Measured with these jobs: docs/results.md (GPU sections) and docs/robustness.md.
set -uo pipefail
export PYTHONPATH=src PYTHONUNBUFFERED=1 BLASTSCAN_CACHE=${BLASTSCAN_CACHE:-/tmp/bscache}
PY=${PY:-python3}; R=/tmp/runs; OUT=${OUT:-/tmp/out}; DEADLINE=${DEADLINE:-530}
mkdir -p $R $OUT
if [ -z "${DATA:-}" ]; then
  DATA=/tmp/data
  [ -d $DATA/Original ] || { mkdir -p $DATA && tar xJf carry/data.tar.xz -C $DATA; }
fi
QUICK=(); LOGITS=()
if [ "${SMOKE:-0}" = 1 ]; then QUICK=(--epochs 1 --max-per-class 12); LOGITS=(--brightness 0.8 1.0); fi
LAMP=(--brighten 0.45 --darken 0.45)

late() { [ $SECONDS -gt $((DEADLINE - ${1:-0})) ]; }
machine() {  # GPU, driver, torch and CPU count, to OUT/machine.txt
  { nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    $PY -c "import torch; print('torch', torch.__version__)"; nproc; } 2>&1 | tee $OUT/machine.txt
}
warm_cache() {  # decode every image once (side-by-side jobs would race to build the same cache)
  $PY -c "from blastscan import data as D; D.load_images(D.scan_dataset('$DATA', 'Original'), ${1:-128})"
}
pack() {  # pack NAME: the run directory and its logs, no weights, atomically
  (cd $R && tar czf $OUT/.$1.tmp --exclude='*.safetensors' --exclude='*.onnx' --exclude='*.npz' \
    --exclude=bundle --exclude=checkpoints $1 $1.*log $1.logits.npz 2>/dev/null
   mv $OUT/.$1.tmp $OUT/$1.tar.gz)
}
net() {  # net NAME RECIPE ARGS...: train, its last log line prefixed with its name
  local name=$1 recipe=$2; shift 2
  $PY -m blastscan train --data $DATA --out $R/$name --quiet --recipe $recipe "$@" "${QUICK[@]}" \
    > $R/$name.log 2>&1
  echo "[$SECONDS s] $name $* :: $(tail -1 $R/$name.log)"
}
features() {  # features NAME DEST: features and logits of every image, timed
  local t0=$SECONDS
  $PY -m blastscan extract --model $R/$1 --data $DATA --out $R/$1.npz --batch-size 256 --quiet \
    > $R/$1.extract.log 2>&1
  echo "[$SECONDS s] extract $1: $((SECONDS - t0)) s :: $(tail -1 $R/$1.extract.log)"
  [ -n "${2:-}" ] && cp $R/$1.npz $OUT/.f.tmp && mv $OUT/.f.tmp $2
}
robustness() {  # robustness NAME PERTURBATION|all
  local only=(); [ "$2" = all ] || only=(--perturbation $2)
  $PY -m blastscan robustness $R/$1 --data $DATA --out $R/$1/rob-$2 "${only[@]}" > $R/$1.rob.log 2>&1
  echo "[$SECONDS s] robustness $1 :: $(tail -2 $R/$1.rob.log | tr '\n' ' ')"
}
logits() {  # logits NAME [--gains]: experiments/lamp_logits.py
  $PY benchmarks/experiments/lamp_logits.py $R/$1 $DATA $R/$1.logits.npz "${@:2}" "${LOGITS[@]}" \
    >> $R/$1.log 2>&1
  echo "[$SECONDS s] $1 logits :: $(tail -1 $R/$1.log)"
}
threads_for() { export OMP_NUM_THREADS=$(( $(nproc) / $1 > 0 ? $(nproc) / $1 : 1 )); }

cmd_bench() {
  machine
  $PY benchmarks/run_all.py --suite gpu --out-dir $OUT
}

cmd_train() {
  local feats=0 rob="" logit=0 gains=() name=""
  while [ $# -gt 0 ]; do
    case $1 in
      --features) feats=1 ;;
      --robustness) rob=$2; shift ;;
      --logits) logit=1 ;;
      --gains) gains=(--gains) ;;
      --name) name=$2; shift ;;
      *) break ;;
    esac
    shift
  done
  local recipe=$1; shift; local seeds=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do seeds+=("$1"); shift; done
  [ "${1:-}" = -- ] && shift
  name=${name:-$recipe}
  machine; warm_cache; threads_for ${#seeds[@]}
  for s in "${seeds[@]}"; do
    (
      late && { echo "$name$s: deadline, not started"; exit; }
      net $name$s $recipe --seed $s "$@"
      [ $feats = 1 ] && features $name$s $OUT/$name$s-features.npz
      [ -n "$rob" ] && robustness $name$s $rob
      [ $logit = 1 ] && logits $name$s "${gains[@]}"
      pack $name$s
    ) &
  done
  wait; echo "[$SECONDS s] done"; ls -la $OUT
}

strict_features() {  # two folds per file, float16 features: files come back at 16 MiB at most
  $PY - "$R" "$OUT" <<'PYEOF'
import glob, os, sys
import numpy as np
runs, out = sys.argv[1:]
folds = sorted(glob.glob(os.path.join(runs, "strict-fold*.npz")))
for part in range(0, len(folds), 2):
    arrays = {}
    for path in folds[part:part + 2]:
        k = os.path.basename(path)[len("strict-fold"):-4]
        z = np.load(path)
        arrays["X" + k], arrays["logits" + k] = z["X"].astype(np.float16), z["logits"]
    tmp = os.path.join(out, ".strict.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, os.path.join(out, f"strict-{part // 2}.npz"))
PYEOF
}

cmd_strict() {
  local recipe=${1:-paper}
  machine; warm_cache 224
  for k in 0 1 2 3 4; do
    late 60 && { echo "strict: deadline, stopped before fold $k"; break; }
    net strict-fold$k $recipe --outer-folds 5 --outer-fold $k
    features strict-fold$k && strict_features
    pack strict-fold$k
  done
  echo "[$SECONDS s] done"; ls -la $OUT
}

cmd_lamp() {
  machine; warm_cache; threads_for $#
  for s in "$@"; do
    (
      net plain40s$s fast --epochs 40 --seed $s; logits plain40s$s; pack plain40s$s
      net ft40s$s fast --epochs 40 --seed $s --lr 0.01 "${LAMP[@]}" \
        --pretrained $R/plain40s$s/checkpoints/final.safetensors
      logits ft40s$s --gains; pack ft40s$s
      late 230 && { echo "seed $s: deadline, no lamp160"; exit; }
      net lamp160s$s fast --epochs 160 --seed $s "${LAMP[@]}"; logits lamp160s$s --gains
      pack lamp160s$s
      late 230 && { echo "seed $s: deadline, no plain160"; exit; }
      net plain160s$s fast --epochs 160 --seed $s; logits plain160s$s; pack plain160s$s
    ) &
  done
  wait; echo "[$SECONDS s] done"; ls -la $OUT
}

cmd_lamp160() {
  machine; warm_cache; threads_for $#
  for s in "$@"; do
    (
      net lamp160s$s fast --epochs 160 --seed $s "${LAMP[@]}"; logits lamp160s$s; pack lamp160s$s
      net plain40s$s fast --epochs 40 --seed $s; logits plain40s$s; pack plain40s$s
    ) &
  done
  wait; echo "[$SECONDS s] done"; ls -la $OUT
}

cmd_weights() {
  $PY - "$R/$1/checkpoints/final.safetensors" "$1" <<'PYEOF'
import os, sys
from safetensors.torch import load_file, save_file
path, name = sys.argv[1:]
t = load_file(path)
t = {k: (v.half() if v.is_floating_point() else v) for k, v in t.items() if k.startswith("model.")}
parts, size = [{}], 0
for k in sorted(t):  # greedy parts under 15 MB
    nbytes = t[k].numel() * t[k].element_size()
    if size + nbytes > 15e6 and parts[-1]:
        parts.append({})
        size = 0
    parts[-1][k] = t[k]
    size += nbytes
for i, part in enumerate(parts):
    save_file(part, os.path.join(os.environ["OUT"], f"{name}-fp16-{i}.safetensors"))
PYEOF
  cp $R/$1/checkpoints/final.json $OUT/$1-final.json; ls -la $OUT
}

job=${1:-}; shift || true
case $job in
  bench|train|strict|lamp|lamp160|weights) export OUT; cmd_$job "$@" ;;
  *) sed -n '2,/^set -uo/p' "$0" | sed '$d' >&2; exit 2 ;;
esac
