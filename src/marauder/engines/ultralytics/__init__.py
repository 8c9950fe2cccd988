"""Our wrapper over Ultralytics YOLO: model resolution, training, prediction, export.

The only package in Marauder that imports `ultralytics`. Submodules import it lazily.
"""
