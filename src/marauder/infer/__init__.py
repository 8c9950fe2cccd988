"""Inference on our Detections type: predictors, TTA, fusion, calibration, thresholds."""
