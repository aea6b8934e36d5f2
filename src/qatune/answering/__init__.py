"""Answering: the one seam (`answerer`), its torch and ONNX backends, span decoding, micro-batching, the factory."""
