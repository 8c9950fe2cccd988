"""Pure converters between YOLO label files, COCO json and our GroundTruth/Detections types."""
