"""ONNX export of the models, parity checks, and the ONNX Runtime wrapper that picks CUDA or CPU."""
