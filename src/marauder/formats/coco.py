"""COCO json <-> YOLO rows. COCO bbox is [x, y, w, h] in pixels; category ids are 1-based here."""

from __future__ import annotations

import numpy as np


def coco_bbox_to_xyxy(bbox) -> list[float]:
    x, y, w, h = (float(v) for v in bbox)
    return [x, y, x + w, y + h]


def xyxy_to_coco_bbox(xyxy) -> list[float]:
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    return [x1, y1, x2 - x1, y2 - y1]


def build_coco(images: list[dict], boxes: list[dict], class_names: list[str]) -> dict:
    """Assemble a COCO dict.

    images: [{"id", "file_name", "width", "height", ...}]
    boxes:  [{"image_id", "class_id" (0-based), "xyxy", "score"(optional)}]
    """
    annotations = []
    for i, b in enumerate(boxes, start=1):
        bbox = xyxy_to_coco_bbox(b["xyxy"])
        ann = {
            "id": i, "image_id": b["image_id"], "category_id": int(b["class_id"]) + 1,
            "bbox": [round(v, 2) for v in bbox], "area": round(bbox[2] * bbox[3], 2), "iscrowd": 0,
        }
        if "score" in b:
            ann["score"] = round(float(b["score"]), 6)
        annotations.append(ann)
    categories = [{"id": i + 1, "name": n, "supercategory": "marine"} for i, n in enumerate(class_names)]
    return {"images": images, "annotations": annotations, "categories": categories}


def rows_from_coco_annotations(annotations: list[dict], width: int, height: int,
                               category_to_class: dict[int, int]) -> np.ndarray:
    """COCO annotations of one image -> YOLO rows (class cx cy w h, normalised)."""
    rows = []
    for ann in annotations:
        x, y, w, h = (float(v) for v in ann["bbox"])
        rows.append([category_to_class[ann["category_id"]], (x + w / 2) / width, (y + h / 2) / height,
                     w / width, h / height])
    return np.asarray(rows, dtype=np.float64).reshape(-1, 5)
