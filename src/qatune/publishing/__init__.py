"""Publishing: ONNX export (and int8 quantisation) and upload of a model folder to the Hugging Face Hub."""
