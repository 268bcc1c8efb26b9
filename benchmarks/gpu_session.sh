#!/usr/bin/env bash
# One device-tool call: the paper recipe at 224 px (30 epochs), feature extraction, the fast
# recipe, all on the lent GPU. The dataset travels in carry/data (JPEGs losslessly re-packed
# with jpegtran -optimize -progressive: pixel-identical, same split). Results land in $OUT.
set -uo pipefail
export PYTHONPATH=src PYTHONUNBUFFERED=1 BLASTSCAN_CACHE=/tmp/bscache
PY=python3
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee $OUT/gpu.txt
$PY -c "import torch;print('torch',torch.__version__)" | tee -a $OUT/gpu.txt
R=/tmp/runs
$PY -m blastscan train --data carry/data --out $R/paper --recipe paper --quiet 2>&1 | tee $OUT/paper.log | tail -3
$PY -m blastscan extract --model $R/paper --data carry/data --out $OUT/features-paper.npz --batch-size 256 --quiet 2>&1 | tail -2
$PY -m blastscan train --data carry/data --out $R/fast --recipe fast --quiet 2>&1 | tee $OUT/fast.log | tail -3
$PY benchmarks/bench_gpu_infer.py 2>&1 | tee $OUT/infer.txt | tail -5
tar czf $OUT/runs.tar.gz --exclude='*.safetensors' -C $R .
ls -la $OUT
