"""Running networks: devices, batched inference, torchrun, and the ONNX Runtime engine."""
