"""Resolve a model name ('yolov8n', 'yolo11s', a .yaml or a .pt path) to something YOLO() can load."""

from __future__ import annotations

from pathlib import Path


def resolve_model_source(spec: str, search_dirs: list[Path] | None = None) -> str:
    """Pretrained weights when present locally, else the architecture from its yaml.

    'yolov8m' -> ./yolov8m.pt or <search_dir>/yolov8m.pt when it exists, else 'yolov8m.yaml'.
    Paths to .pt/.yaml files are returned unchanged.
    """
    if spec.endswith((".pt", ".yaml", ".yml")):
        return spec
    for folder in [Path.cwd(), *(search_dirs or [])]:
        candidate = Path(folder) / f"{spec}.pt"
        if candidate.is_file():
            return str(candidate)
    return f"{spec}.yaml"


def load_yolo(source: str | Path, task: str = "detect"):
    """A YOLO object for weights or a model yaml."""
    from ultralytics import YOLO

    return YOLO(str(source), task=task)


def class_names_of(model) -> list[str]:
    names = model.names
    return [names[i] for i in sorted(names)] if isinstance(names, dict) else list(names)
