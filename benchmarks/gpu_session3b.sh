#!/usr/bin/env bash
# Session 5's second device call: can the every-lamp network lose nothing at x1.0?
# Longer training (80 epochs) and a narrower lamp range (x0.65-x1.35, still covering the goal's
# x0.7-x1.3), two seeds each, two runs side by side on the GPU, then the brightness sweep.
# `gpu_session3b.sh long`: the third call, 160 epochs, two seeds.
set -uo pipefail
export PYTHONPATH=src PYTHONUNBUFFERED=1 BLASTSCAN_CACHE=/tmp/bscache OMP_NUM_THREADS=8
PY=${PY:-python3}; R=/tmp/runs3b; D=${DATA:-carry/data}; OUT=${OUT:-/tmp/out}
mkdir -p $R $OUT
arm() {  # arm NAME ARGS...: train, sweep brightness, pack everything without weights
  local name=$1; shift
  $PY -m blastscan train --data $D --out $R/$name --quiet --recipe fast "$@" > $R/$name.log 2>&1
  echo "[$SECONDS s] $name $* :: $(tail -1 $R/$name.log)"
  $PY -m blastscan robustness $R/$name --data $D --out $R/$name/rob-bright --perturbation brightness > $R/$name.rob.log 2>&1
  echo "[$SECONDS s] robustness $name :: $(tail -1 $R/$name.rob.log)"
  tar czf $OUT/.$name.tmp --exclude='*.safetensors' --exclude='*.npz' -C $R $name $name.log $name.rob.log \
    && mv $OUT/.$name.tmp $OUT/$name.tar.gz
}
if [ "${1:-}" = long ]; then  # third call: does a longer schedule close the clean gap?
  ( arm lamp160s0 --epochs 160 --seed 0 --brighten 0.45 --darken 0.45 ) &
  ( arm lamp160s1 --epochs 160 --seed 1 --brighten 0.45 --darken 0.45 )
  wait; echo "[$SECONDS s] done"; exit
fi
( arm lamp80s0 --epochs 80 --seed 0 --brighten 0.45 --darken 0.45
  arm lamp35s0 --epochs 40 --seed 0 --brighten 0.35 --darken 0.35 ) &
( arm lamp80s1 --epochs 80 --seed 1 --brighten 0.45 --darken 0.45
  arm lamp35s1 --epochs 40 --seed 1 --brighten 0.35 --darken 0.35 )
wait; echo "[$SECONDS s] done"
