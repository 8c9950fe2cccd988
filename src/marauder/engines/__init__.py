"""Training/inference engines. `engines.ultralytics` is the only package that imports ultralytics."""
