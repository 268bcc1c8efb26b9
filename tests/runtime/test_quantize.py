"""int8 with ONNX Runtime: a QDQ graph calibrated on the images given, close to fp32."""

from __future__ import annotations

import numpy as np
import pytest
from bundle_helpers import SIZE, single_thread, tiny_model  # noqa: F401

from blastscan.data.synthetic import synthetic_smears
from blastscan.errors import BlastscanError
from blastscan.runtime.onnx import OnnxEngine, onnx_bytes
from blastscan.runtime.quantize import calibration_sample, quantize_int8


@pytest.fixture(scope="module")
def graphs():
    fp32 = onnx_bytes(tiny_model(), SIZE)[0]
    return fp32, quantize_int8(fp32, synthetic_smears(32, SIZE, seed=7), reduce_range=True)


def test_the_int8_graph_is_qdq_with_int8_weights(graphs):
    import onnx

    graph = onnx.load_from_string(graphs[1].data).graph
    ops = {n.op_type for n in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    int8 = [t for t in graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert len(int8) >= 19  # every convolution's weights
    assert len(graphs[1].data) < 0.5 * len(graphs[0])
    assert graphs[1].calibration_images == 32


def test_int8_features_follow_fp32(graphs):
    images = synthetic_smears(8, SIZE, seed=8)
    fp32 = OnnxEngine(graphs[0], threads=1).infer(images, 8)
    int8 = OnnxEngine(graphs[1].data, threads=1).infer(images, 8)
    assert int8.features.shape == fp32.features.shape and int8.features.dtype == np.float32
    assert not np.array_equal(int8.features, fp32.features)
    # A random 32 px network quantises far worse than a trained one (the parity of a trained
    # run is measured by benchmarks/suites/precision.py); these are still the same rows.
    assert np.corrcoef(int8.features.ravel(), fp32.features.ravel())[0, 1] > 0.6


def test_no_calibration_images_is_a_one_line_error(graphs):
    with pytest.raises(BlastscanError, match="training images"):
        quantize_int8(graphs[0], np.zeros((0, SIZE, SIZE, 3), np.uint8))


def test_the_calibration_sample_is_seeded_and_bounded():
    a, b = calibration_sample(1000, seed=0), calibration_sample(1000, seed=0)
    np.testing.assert_array_equal(a, b)
    assert len(a) == 128 and len(set(a)) == 128 and a.max() < 1000
    assert len(calibration_sample(10)) == 10
    assert not np.array_equal(a, calibration_sample(1000, seed=1))
