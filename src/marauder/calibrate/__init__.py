"""The calibrate stage, in parts:

  data        where the labelled calibration images are, read in batches
  fit         per-class score calibrators (temperature / Platt / isotonic), chosen on held-out images
  thresholds  per-class operating thresholds, and their precision/recall judged out of fold
  report      report.json / report.md / the reliability diagram, from one `CalibrationRun` record
  stage       `run_calibrate`: predict, fit, choose, write pipeline_config.yaml (all or nothing)

Applying what was fitted is the numpy core's job (marauder.runtime.calibration, .pipeline).
"""
