"""Model bundle: one folder that holds everything needed to use a trained model, and no pickle.

`format` names the files and checks them, `heads` and `ood` are what a bundle predicts with,
`write` and `card` make one, `loaded` reads one back (`load_bundle`), `build` makes one from a
training run and `export` adds the ONNX graph. Loading reads each file once, checks its sha256
against bundle.json and only then parses it: tensors come from safetensors, the classifier
from skops with an explicit allow-list of types, so a bundle can carry no code.
"""

from blastscan.bundle.build import (
    bundle_from_run,
    fit_classical,
    fit_ood_from,
    held_out_score,
    write_cnn_bundle,
)
from blastscan.bundle.card import model_card
from blastscan.bundle.format import (
    CARD,
    CLASSICAL_ARRAYS,
    CLASSIFIER,
    DEFAULT_DATA,
    FORMAT,
    FORMAT_VERSION,
    INPUT_SPEC,
    MANIFEST,
    ONNX,
    OOD_ARRAYS,
    TRUSTED_TYPES,
    WEIGHTS,
    add_file,
    read_manifest,
    read_verified,
    sha256_bytes,
    versions,
)
from blastscan.bundle.heads import HEAD_CLASSICAL, HEAD_CNN, ClassicalHead, Prediction, TorchEngine
from blastscan.bundle.loaded import Bundle, as_bundle, load_bundle
from blastscan.bundle.ood import OODDetector
from blastscan.bundle.write import write_bundle

__all__ = [
    "CARD",
    "CLASSICAL_ARRAYS",
    "CLASSIFIER",
    "DEFAULT_DATA",
    "FORMAT",
    "FORMAT_VERSION",
    "HEAD_CLASSICAL",
    "HEAD_CNN",
    "INPUT_SPEC",
    "MANIFEST",
    "ONNX",
    "OOD_ARRAYS",
    "TRUSTED_TYPES",
    "WEIGHTS",
    "Bundle",
    "ClassicalHead",
    "OODDetector",
    "Prediction",
    "TorchEngine",
    "add_file",
    "as_bundle",
    "bundle_from_run",
    "fit_classical",
    "fit_ood_from",
    "held_out_score",
    "load_bundle",
    "model_card",
    "read_manifest",
    "read_verified",
    "sha256_bytes",
    "versions",
    "write_bundle",
    "write_cnn_bundle",
]
