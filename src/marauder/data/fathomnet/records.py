"""FathomNet image records -> our metadata entries and YOLO label rows (pure functions)."""

from __future__ import annotations

import posixpath
from urllib.parse import urlparse

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


def image_file_name(uuid: str, url: str) -> str:
    """<uuid>.<ext of the URL>, falling back to .jpg (FathomNet serves JPEG and PNG)."""
    ext = posixpath.splitext(urlparse(url).path)[1].lower()
    return f"{uuid}{ext if ext in IMAGE_EXTENSIONS else '.jpg'}"


def group_key(contributor: str | None, timestamp: str | None, lat: float | None, lon: float | None,
              uuid: str) -> str:
    """Images sharing a key came from one deployment (same contributor, same UTC day, else the same
    spot); splitting by it keeps near-identical frames of one dive out of both train and test."""
    who = contributor or "unknown"
    if timestamp and len(timestamp) >= 10:
        return f"{who}/{timestamp[:10]}"
    if lat is not None and lon is not None:
        return f"{who}/{lat:.2f},{lon:.2f}"
    return f"{who}/{uuid}"


def image_entry(dto, file_name: str) -> dict:
    """The metadata entry for one image (boxes get their class later, from the class mapping)."""
    boxes = []
    for b in dto.boundingBoxes or []:
        if b.rejected or None in (b.x, b.y, b.width, b.height):
            continue
        boxes.append({
            "uuid": b.uuid, "concept": b.concept, "x": b.x, "y": b.y, "width": b.width, "height": b.height,
            "review_state": b.reviewState.value if b.reviewState is not None else None,
        })
    boxes.sort(key=lambda b: (b["concept"] or "", b["x"], b["y"], b["width"], b["height"], b["uuid"] or ""))
    return {
        "file": file_name, "uuid": dto.uuid, "url": dto.url, "sha256": dto.sha256,
        "width": dto.width, "height": dto.height,
        "depth_m": dto.depthMeters, "latitude": dto.latitude, "longitude": dto.longitude,
        "timestamp": dto.timestamp, "imaging_type": dto.imagingType, "contributor": dto.contributorsEmail,
        "group": group_key(dto.contributorsEmail, dto.timestamp, dto.latitude, dto.longitude, dto.uuid),
        "boxes": boxes,
    }


def apply_classes(entry: dict, concept_to_class: dict[str, int], classes: list[str]) -> dict:
    """Set each box's class (None for concepts nobody asked for: kept in metadata, not in labels)."""
    for box in entry["boxes"]:
        idx = concept_to_class.get(box["concept"])
        box["class_index"] = idx
        box["class"] = classes[idx] if idx is not None else None
    return entry


def label_text(entry: dict) -> str:
    """YOLO label text for the boxes that have a class, clipped to the image."""
    w, h = entry["width"], entry["height"]
    rows = []
    for b in entry["boxes"]:
        if b.get("class_index") is None or not w or not h:
            continue
        x0, y0 = max(0.0, b["x"]), max(0.0, b["y"])
        x1, y1 = min(float(w), b["x"] + b["width"]), min(float(h), b["y"] + b["height"])
        if x1 <= x0 or y1 <= y0:
            continue
        rows.append([b["class_index"], (x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h])
    from ...formats.yolo import format_labels  # numpy: imported off the download's start-up path

    return format_labels(rows)
