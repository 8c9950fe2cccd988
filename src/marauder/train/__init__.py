"""Detector training stages over the Ultralytics engine, and the plumbing they share (common.py)."""
