"""Map a model's class ids onto the dataset's, or stop with the names that differ."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..errors import MarauderError

DROP = ("", "-", "none", "null", "drop")


def parse_class_map(text: str | None) -> dict[str, str | None] | None:
    """`--map-classes`: "model=dataset,other=-" pairs ("-" drops a class) or a YAML/JSON mapping file."""
    if text is None:
        return None
    path = Path(text)
    if path.suffix.lower() in (".yaml", ".yml", ".json") and path.is_file():
        import yaml

        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, yaml.YAMLError) as exc:  # ValueError: not UTF-8
            raise MarauderError(f"cannot read class map: {str(exc).splitlines()[0]}", file=str(path)) from None
        if not isinstance(doc, dict):
            raise MarauderError("class map must be a mapping {model_class: dataset_class}", file=str(path))
        return {str(k): (None if v is None or str(v).lower() in DROP else str(v)) for k, v in doc.items()}
    out: dict[str, str | None] = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        if "=" not in pair:
            raise MarauderError(f"--map-classes: '{pair}' is not MODEL_CLASS=DATASET_CLASS")
        key, value = (s.strip() for s in pair.split("=", 1))
        out[key] = None if value.lower() in DROP else value
    return out


def class_index_map(model_names: Sequence[str], dataset_names: Sequence[str],
                    class_map: Mapping[str, str | None] | None = None) -> np.ndarray:
    """Array: model class id -> dataset class id (-1 = drop those detections).

    Identical lists map one to one. Otherwise every model class must be in `class_map` or carry a
    dataset class's name; without a map any difference is an error that names the classes.
    """
    model_names, dataset_names = list(model_names), list(dataset_names)
    unknown_keys = [k for k in (class_map or {}) if k not in model_names]
    if unknown_keys:
        raise MarauderError(f"--map-classes names classes the model does not have: {unknown_keys} "
                            f"(model classes: {model_names})")
    if model_names == dataset_names:
        return np.arange(len(model_names), dtype=np.int64)
    if class_map is None:
        only_model = [n for n in model_names if n not in dataset_names]
        only_data = [n for n in dataset_names if n not in model_names]
        detail = []
        if only_model:
            detail.append(f"only in the model: {only_model}")
        if only_data:
            detail.append(f"only in the dataset: {only_data}")
        if not detail:
            detail.append(f"same names in another order: model {model_names}, dataset {dataset_names}")
        raise MarauderError("model and dataset class names differ (" + "; ".join(detail)
                            + "); pass --map-classes MODEL=DATASET,... to evaluate anyway")
    index = {n: i for i, n in enumerate(dataset_names)}
    out = np.full(len(model_names), -1, dtype=np.int64)
    for i, name in enumerate(model_names):
        target = class_map[name] if name in class_map else name
        if target is None:
            continue
        if target not in index:
            raise MarauderError(f"model class '{name}' maps to '{target}', which is not a dataset class "
                                f"{dataset_names}; map it with --map-classes {name}=DATASET_CLASS or {name}=-")
        out[i] = index[target]
    return out


def remap(det, index_map: np.ndarray, source: str = "model"):
    """Detections with class ids translated (dropped where the map says -1)."""
    from ..errors import DataError

    if len(det) == 0:
        return det
    bad = (det.class_ids < 0) | (det.class_ids >= len(index_map))
    if bad.any():
        raise DataError(f"{source} produced class id {int(det.class_ids[bad][0])}, outside its "
                        f"{len(index_map)} classes")
    new_ids = index_map[det.class_ids]
    keep = new_ids >= 0
    from ..types import Detections

    return Detections(det.xyxy[keep], det.scores[keep], new_ids[keep], det.image_size, dict(det.extra))
