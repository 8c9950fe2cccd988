"""`marauder export`: PyTorch -> ONNX (-> TensorRT), validation against PyTorch, the Jetson package.

  onnx_export       each checkpoint to ONNX through the Ultralytics engine
  tensorrt          engines on this machine when TensorRT is installed (same builder as the device)
  parity            exported vs PyTorch: metrics on the test split, boxes/scores on check images
  deployment_config what the edge runtime reads (classes, thresholds, calibration, fusion, energy)
  package           nano_deployment/ with models, runtime, scripts, checksums, and its .tar.gz
  quantize          INT8 ONNX (onnxruntime) for the CPU/cloud path
  stage             run_export: the whole stage
"""
