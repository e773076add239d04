// formats_onnx tests
