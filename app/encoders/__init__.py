"""/v1/encoders: pretrained image encoders (ONNX), uploaded, checked and stored once."""
