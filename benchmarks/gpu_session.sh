#!/usr/bin/env bash
# One device-tool call: the paper recipe at 224 px (30 epochs) and its features, the fast
# recipe, inference throughput, then the strict protocol's 5 outer-fold CNNs (paper recipe),
# each one's features of every image. The dataset travels in carry/data (JPEGs losslessly
# re-packed with jpegtran -optimize -progressive: pixel-identical, so the same split).
set -uo pipefail
export PYTHONPATH=src PYTHONUNBUFFERED=1 BLASTSCAN_CACHE=/tmp/bscache
PY=python3; R=/tmp/runs; mkdir -p $R/strict
pack() { tar czf $OUT/runs.tar.gz --exclude='*.safetensors' --exclude='*.npz' -C $R . ; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > $R/gpu.txt
$PY -c "import torch;print('torch',torch.__version__)" >> $R/gpu.txt
$PY -m blastscan train --data carry/data --out $R/paper --recipe paper --quiet > $R/paper.log 2>&1; tail -1 $R/paper.log
$PY -m blastscan extract --model $R/paper --data carry/data --out $OUT/features-paper.npz --batch-size 256 --quiet 2>&1 | tail -1
$PY -m blastscan train --data carry/data --out $R/fast --recipe fast --quiet > $R/fast.log 2>&1; tail -1 $R/fast.log
$PY benchmarks/bench_gpu_infer.py > $R/infer.json 2>&1; cat $R/infer.json
pack
for k in 0 1 2 3 4; do
  $PY -m blastscan train --data carry/data --out $R/strict/fold$k --recipe paper --outer-folds 5 --outer-fold $k --quiet > $R/strict/fold$k.log 2>&1; tail -1 $R/strict/fold$k.log
  $PY -m blastscan extract --model $R/strict/fold$k --data carry/data --out $R/strict/fold$k.npz --batch-size 256 --quiet > /dev/null 2>&1
  $PY -c "
import numpy as np, glob
fs=sorted(glob.glob('$R/strict/fold*.npz'))
for a in range(0,len(fs),2):
    d={}
    for f in fs[a:a+2]:
        z=np.load(f); k=f.split('fold')[-1][:-4]; d['X'+k]=z['X'].astype(np.float16); d['logits'+k]=z['logits']
    np.savez('$OUT/strict-%d.npz'%(a//2), **d)
"
  pack
done
ls -la $OUT
