"""Does averaging the 8 dihedral views at test time (TTA) change a run's accuracy?

    .venv/bin/python benchmarks/experiments/tta.py runs/fast17-cpu ../shared/data/all-idb-taleqani

Scores the run's final weights on its own validation and test images, one view and 8 views.
"""

import sys
from pathlib import Path

import torch

from blastscan import data as D
from blastscan.training import load_trained_model

run, root = Path(sys.argv[1]), sys.argv[2]
model, meta = load_trained_model(run)
dataset, parts = D.run_split(run, root, meta)
all_images = D.load_images(dataset, meta["image_size"])
torch.set_grad_enabled(False)
for part in ("val", "test"):
    rows = parts[part]
    images = all_images[rows]
    labels = dataset.labels[rows]
    single, views = [], []
    for start in range(0, len(rows), 64):
        x = D.to_float_tensor(images[start : start + 64])
        p = torch.zeros(len(x), model.num_classes)
        for flip in (False, True):
            for k in range(4):
                v = torch.rot90(x.flip(3) if flip else x, k, dims=(2, 3))
                q = model(v.contiguous(memory_format=torch.channels_last)).softmax(1)
                if not flip and k == 0:
                    single.append(q.argmax(1))
                p += q
        views.append(p.argmax(1))
    one = (torch.cat(single).numpy() == labels).mean()
    eight = (torch.cat(views).numpy() == labels).mean()
    print(f"{run} {part} ({len(rows)}): one view {one:.4%}, 8 views {eight:.4%}")
