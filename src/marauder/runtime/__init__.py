"""Edge runtime: numpy + OpenCV + onnxruntime/TensorRT only. Never import torch or ultralytics here."""
