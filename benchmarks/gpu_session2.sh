#!/usr/bin/env bash
# Second device call: fast-recipe variants and colour-jitter training, robustness of each
# model on its held-out 30%, and the weights (fp16, in 3 parts) of the jitter-trained model.
set -uo pipefail
export PYTHONPATH=src PYTHONUNBUFFERED=1 BLASTSCAN_CACHE=/tmp/bscache
PY=python3; R=/tmp/runs; D=carry/data; mkdir -p $R
pack() { tar czf $OUT/runs2.tar.gz --exclude='*.safetensors' --exclude='*.npz' -C $R . ; }
t() { name=$1; shift; $PY -m blastscan train --data $D --out $R/$name --quiet "$@" > $R/$name.log 2>&1; echo "$name $* :: $(tail -1 $R/$name.log)"; }
rob() { $PY -c "
import logging; from blastscan.robustness import run_robustness, summarize
r = run_robustness('$R/$1', '$D', '$R/$1/robustness'); print('$1', summarize(r))" 2>&1 | tail -1; }
t fastjit --recipe fast --epochs 30 --image-size 224 --color-jitter 0.3
t paperjit --recipe paper --color-jitter 0.3
t paper --recipe paper
pack
rob fastjit; rob paper; pack
t fast --recipe fast
t fast20 --recipe fast --epochs 20 --lr 0.02
pack
rob paperjit; pack
$PY - <<'PYEOF'
import os, torch
from safetensors.torch import load_file, save_file
t = load_file('/tmp/runs/fastjit/checkpoints/final.safetensors')
t = {k: (v.half() if v.is_floating_point() else v) for k, v in t.items() if k.startswith('model.')}
parts, size = [{}], 0
for k in sorted(t):  # greedy parts under 15 MB: the device tool returns files of 16 MiB at most
    nbytes = t[k].numel() * t[k].element_size()
    if size + nbytes > 15e6 and parts[-1]:
        parts.append({}); size = 0
    parts[-1][k] = t[k]; size += nbytes
for i, part in enumerate(parts):
    save_file(part, os.path.join(os.environ['OUT'], f'fastjit-fp16-{i}.safetensors'))
PYEOF
cp $R/fastjit/checkpoints/final.json $OUT/fastjit-final.json
ls -la $OUT
