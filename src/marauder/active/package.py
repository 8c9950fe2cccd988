"""The annotation package: one zip the vendor gets, and the record we match their return against.

Layout inside the zip:
    package.json                  id, creation time, strategy, model, classes, counts
    manifest.csv                  image_id, file, sha256, score, source, original, width, height
    annotations.json              COCO: images, categories, model pre-annotations (with "score")
    images/<name>_<sha10>.jpg     the original bytes of each selected image (name + content hash)
    thumbnails/<name>_<sha10>.jpg small previews
    guidelines/GUIDELINES.md, guidelines/guidelines.html, guidelines/examples/<class>.jpg
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..formats.coco import build_coco
from .guidelines import example_path, guidelines_html, guidelines_markdown
from .selection import Candidate

MANIFEST_COLUMNS = ["image_id", "file", "sha256", "score", "source", "original", "width", "height"]


@dataclass(frozen=True)
class PackageEntry:
    image_id: int
    file: str  # path inside the zip, e.g. images/frame_3fa2b0c1d4.jpg
    sha256: str
    score: float
    source: str
    original: str
    width: int
    height: int


@dataclass(frozen=True)
class PackageInfo:
    path: Path
    package_id: str
    entries: list[PackageEntry]
    n_pre_annotations: int


def _thumbnail(image: np.ndarray, longest: int) -> bytes:
    h, w = image.shape[:2]
    scale = min(1.0, longest / max(h, w))
    if scale < 1.0:
        image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise ValueError("thumbnail encoding failed")
    return buf.tobytes()


def _safe_stem(path: Path) -> str:
    keep = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in path.stem)
    return keep[:80] or "image"


def manifest_csv(entries: list[PackageEntry]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(MANIFEST_COLUMNS)
    for e in entries:
        writer.writerow([e.image_id, e.file, e.sha256, f"{e.score:.6f}", e.source, e.original, e.width, e.height])
    return buf.getvalue()


def write_package(target: Path, package_id: str, selected: list[Candidate], class_names: list[str], *,
                  crops: dict[str, bytes], pre_annotation_confidence: float, thumbnail_size: int,
                  metadata: dict, relative_to: Path | None = None) -> PackageInfo:
    """Write the zip to a temporary name and rename it into place (a reader never sees half a zip)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    entries: list[PackageEntry] = []
    coco_images, coco_boxes = [], []
    try:
        with zipfile.ZipFile(tmp_name, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for image_id, cand in enumerate(selected, start=1):
                src = Path(cand.path)
                data = src.read_bytes()
                image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
                if image is None:
                    raise ValueError(f"{src}: image can no longer be decoded")
                h, w = image.shape[:2]
                name = f"{_safe_stem(src)}_{cand.sha256[:10]}"  # content-addressed: unique across packages
                file = f"images/{name}{src.suffix.lower()}"
                zf.writestr(file, data, compress_type=zipfile.ZIP_STORED)  # already compressed pixels
                zf.writestr(f"thumbnails/{name}.jpg", _thumbnail(image, thumbnail_size),
                            compress_type=zipfile.ZIP_STORED)
                original = str(src)
                if relative_to is not None:
                    try:
                        original = str(src.resolve().relative_to(relative_to))
                    except ValueError:
                        pass
                entries.append(PackageEntry(image_id, file, cand.sha256, cand.score, cand.source, original, w, h))
                coco_images.append({"id": image_id, "file_name": file, "width": w, "height": h,
                                    "sha256": cand.sha256})
                dets = cand.detections.filter(pre_annotation_confidence)
                for box, score, cls in zip(dets.xyxy, dets.scores, dets.class_ids):
                    x1, y1, x2, y2 = np.clip(box, 0, [w, h, w, h]).tolist()
                    if x2 > x1 and y2 > y1:
                        coco_boxes.append({"image_id": image_id, "class_id": int(cls), "xyxy": [x1, y1, x2, y2],
                                           "score": float(score)})
            coco = build_coco(coco_images, coco_boxes, class_names)
            coco["info"] = {"package_id": package_id, "description": "Marauder annotation package",
                            "date_created": metadata.get("created_at", "")}
            zf.writestr("annotations.json", json.dumps(coco, indent=1) + "\n")
            zf.writestr("manifest.csv", manifest_csv(entries))
            n = len(entries)
            zf.writestr("guidelines/GUIDELINES.md", guidelines_markdown(package_id, class_names, crops, n))
            zf.writestr("guidelines/guidelines.html", guidelines_html(package_id, class_names, crops, n))
            for cname, jpg in crops.items():
                zf.writestr(example_path(cname), jpg, compress_type=zipfile.ZIP_STORED)
            info = {**metadata, "package_id": package_id, "classes": class_names, "n_images": n,
                    "n_pre_annotations": len(coco_boxes)}
            zf.writestr("package.json", json.dumps(info, indent=2) + "\n")
            zf.comment = f"marauder annotation package {package_id}".encode()
        os.chmod(tmp_name, 0o644)  # mkstemp makes 0600; the package is meant to be shared
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return PackageInfo(target, package_id, entries, len(coco_boxes))


def archive_copy(package: Path, archive_dir: Path, package_id: str) -> Path:
    """Keep packages/<id>.zip so an import can find its package even after newer exports."""
    archive_dir.mkdir(parents=True, exist_ok=True)
    dest = archive_dir / f"{package_id}.zip"
    tmp = archive_dir / f".{package_id}.zip.tmp"
    tmp.unlink(missing_ok=True)
    try:
        os.link(package, tmp)
    except OSError:
        shutil.copy2(package, tmp)
    os.replace(tmp, dest)
    return dest
