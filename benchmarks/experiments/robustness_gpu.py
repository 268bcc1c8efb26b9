"""Device experiment: train DarkNet-19 variants (baseline / colour jitter / stain norm / both)
and measure each one's robustness on the held-out 30%. Usage: exp.py DATA OUT"""

import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

T0 = time.time()
BUDGET = float(os.environ.get("BUDGET", "240"))  # seconds; no new variant starts after this
EPOCHS = int(os.environ.get("EPOCHS", "15"))
SIZE = int(os.environ.get("SIZE", "128"))
JITTER = float(os.environ.get("JITTER", "0.4"))
MAXPC = int(os.environ.get("MAXPC", "0")) or None
TINY = bool(os.environ.get("TINY"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from blastscan import data as D  # noqa: E402
from blastscan import robustness as R  # noqa: E402
from blastscan import training as T  # noqa: E402
from blastscan.models.darknet19 import DarkNet19  # noqa: E402

data, out = Path(sys.argv[1]), Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
cache = Path(os.environ.get("BLASTSCAN_CACHE", "/tmp/bscache"))
runs = Path("/tmp/rruns") if not TINY else out / "runs"


class NormNet(DarkNet19):
    def feature_map(self, x):
        return super().feature_map(R.normalize_stain(x))

    def features(self, x):
        return super().features(R.normalize_stain(x))


orig_build, orig_save = T.darknet19, T.save_checkpoint
T.save_checkpoint = lambda path, *a, **k: (
    orig_save(path, *a, **k) if Path(path).name.startswith("final") else None
)
grid = R.DEFAULT_GRID if not TINY else {"brightness": (0.7, 1.3), "hue": (20.0,), "jpeg": (50.0,)}

ds = D.scan_dataset(data)
print(f"scan {time.time() - T0:.1f}s, {len(ds.samples)} images", flush=True)
_orig_scan = D.scan_dataset
D.scan_dataset = lambda *a, **k: ds
variants = [("baseline", 0.0, False, EPOCHS), ("stainnorm", 0.0, True, EPOCHS),
            ("jitter", JITTER, False, EPOCHS), ("jitter+stainnorm", JITTER, True, EPOCHS)]  # fmt: skip
if os.environ.get("VARIANTS"):
    variants = [(n, float(j), bool(int(m)), int(e)) for n, j, m, e in
                (v.split(":") for v in os.environ["VARIANTS"].split(","))]  # fmt: skip
summary = {}
for name, jitter, norm, epochs in variants:
    if time.time() - T0 > BUDGET:
        print(f"skip {name}: {time.time() - T0:.0f}s spent", flush=True)
        continue
    t = time.time()
    T.darknet19 = (lambda k, pretrained=None: NormNet(k)) if norm else orig_build
    cfg = T.recipe_config("paper", image_size=SIZE, epochs=epochs, color_jitter=jitter)
    if TINY:
        cfg = replace(cfg, batch_size=8, max_per_class=MAXPC, val_fraction=0.2)
    res = T.train(data, runs / name, cfg, cache_dir=cache, show_progress=False, dataset=ds)
    t_train = time.time() - t
    model, meta = T.load_trained_model(runs / name)
    assert isinstance(model, NormNet) == norm
    images, labels, _ = R.held_out_images(runs / name, data, meta, cache)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    result = R.evaluate_robustness(model, images, labels, grid, batch_size=256, device=dev)
    result.update(variant=name, color_jitter=jitter, stain_norm=norm, config=meta.get("config"),
                  train_test_accuracy=res.test_metrics["accuracy"], train_seconds=t_train)  # fmt: skip
    (out / f"robustness-{name.replace('+', '-').replace('.', '')}.json").write_text(
        json.dumps(result, indent=1)
    )
    summary[name] = {
        **result["summary"],
        "train_s": round(t_train, 1),
        "eval_s": round(time.time() - t - t_train, 1),
    }
    b = {
        pt["strength"]: pt["accuracy"]["value"]
        for pt in result["perturbations"]["brightness"]["points"]
    }
    print(name, json.dumps(summary[name]), {k: round(v, 4) for k, v in b.items()}, flush=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
T.darknet19 = orig_build
print(f"total {time.time() - T0:.0f}s", flush=True)
np.zeros(1)
