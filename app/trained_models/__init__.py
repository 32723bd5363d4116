"""Trained models: read, delete, predict, download (zip, ONNX), import."""
