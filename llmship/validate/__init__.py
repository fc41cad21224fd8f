"""Validation: ONNX export, parity, quality, benchmarks and the gates that judge them."""
