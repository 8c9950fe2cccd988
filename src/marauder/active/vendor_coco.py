"""Checking a vendor's COCO file against the package it answers, in two passes.

1. Structure (`parse_coco`): keys, types, finite numbers, unique ids. A failure here means the file
   is broken, so the whole import stops with an error naming the item (`annotations[7] (id 31): ...`).
2. Content (`check_against_package`): every image and box is judged on its own. Bad ones are
   rejected with a reason and listed in the report; the good ones become labels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError
from ..types import box_iou
from .safezip import is_finite_number


@dataclass(frozen=True)
class CocoImage:
    index: int
    id: int
    file_name: str
    width: int | None
    height: int | None


@dataclass(frozen=True)
class CocoBox:
    index: int
    id: int | None
    image_id: int
    category_id: int
    bbox: tuple[float, float, float, float]  # x, y, w, h in pixels
    iscrowd: bool = False  # a COCO crowd region: kept apart, ignored by training, neutral in evaluation

    @property
    def label(self) -> str:
        return f"annotations[{self.index}]" + (f" (id {self.id})" if self.id is not None else "")


@dataclass(frozen=True)
class CocoFile:
    images: list[CocoImage]
    boxes: list[CocoBox]
    categories: dict[int, str]
    info: dict


def _int(value, where: str, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DataError(f"{where}: '{key}' must be an integer, got {type(value).__name__} {value!r:.40}")
    return value


def _require(obj, key: str, where: str):
    if not isinstance(obj, dict):
        raise DataError(f"{where}: must be an object, got {type(obj).__name__}")
    if key not in obj:
        raise DataError(f"{where}: missing key '{key}'")
    return obj[key]


def parse_coco(doc, source: str) -> CocoFile:
    """Structural validation; raises DataError (prefixed with `source`) naming the first bad item."""
    try:
        return _parse(doc)
    except DataError as exc:
        raise DataError(exc.message, file=source) from None


def _parse(doc) -> CocoFile:
    if not isinstance(doc, dict):
        raise DataError(f"top level must be an object with images/annotations/categories, got {type(doc).__name__}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(_require(doc, key, "top level"), list):
            raise DataError(f"'{key}' must be a list, got {type(doc[key]).__name__}")
    categories: dict[int, str] = {}
    for i, cat in enumerate(doc["categories"]):
        where = f"categories[{i}]"
        cid = _int(_require(cat, "id", where), where, "id")
        name = _require(cat, "name", where)
        if not isinstance(name, str) or not name.strip():
            raise DataError(f"{where}: 'name' must be a non-empty string, got {name!r:.40}")
        if cid in categories:
            raise DataError(f"{where}: duplicate category id {cid}")
        categories[cid] = name
    images, seen_images = [], set()
    for i, img in enumerate(doc["images"]):
        where = f"images[{i}]"
        iid = _int(_require(img, "id", where), where, "id")
        where = f"images[{i}] (id {iid})"
        name = _require(img, "file_name", where)
        if not isinstance(name, str) or not name:
            raise DataError(f"{where}: 'file_name' must be a non-empty string, got {name!r:.40}")
        size = []
        for key in ("width", "height"):
            v = img.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v <= 0):
                raise DataError(f"{where}: '{key}' must be a positive integer, got {v!r:.40}")
            size.append(v)
        if iid in seen_images:
            raise DataError(f"{where}: duplicate image id {iid}")
        seen_images.add(iid)
        images.append(CocoImage(i, iid, name, size[0], size[1]))
    boxes, seen_boxes = [], set()
    for i, ann in enumerate(doc["annotations"]):
        where = f"annotations[{i}]"
        aid = ann.get("id") if isinstance(ann, dict) else None
        if aid is not None:
            aid = _int(aid, where, "id")
            where = f"annotations[{i}] (id {aid})"
            if aid in seen_boxes:
                raise DataError(f"{where}: duplicate annotation id {aid}")
            seen_boxes.add(aid)
        image_id = _int(_require(ann, "image_id", where), where, "image_id")
        category_id = _int(_require(ann, "category_id", where), where, "category_id")
        bbox = _require(ann, "bbox", where)
        if not isinstance(bbox, list) or len(bbox) != 4:
            raise DataError(f"{where}: 'bbox' must be a list of 4 numbers [x, y, w, h], got {bbox!r:.60}")
        for j, v in enumerate(bbox):
            if not is_finite_number(v):
                what = "NaN" if isinstance(v, float) and v != v else repr(v)[:30]
                raise DataError(f"{where}: bbox[{j}] must be a finite number, got {what}")
        crowd = ann.get("iscrowd", 0)
        if type(crowd) not in (int, bool) or crowd not in (0, 1):
            raise DataError(f"{where}: 'iscrowd' must be 0 or 1, got {crowd!r:.40}")
        boxes.append(CocoBox(i, aid, image_id, category_id, tuple(float(v) for v in bbox), bool(crowd)))
    info = doc.get("info") if isinstance(doc.get("info"), dict) else {}
    return CocoFile(images, boxes, categories, info)


# -- category names ---------------------------------------------------------------------------------

def normalize_name(name: str) -> str:
    """'Purple  Sea-Urchin' == 'purple_sea_urchin': case, spaces, '_' and '-' don't matter."""
    return re.sub(r"[\s_\-]+", " ", name).strip().casefold()


def map_categories(categories: dict[int, str], class_names: list[str],
                   aliases: dict[str, str]) -> tuple[dict[int, int], dict[int, str]]:
    """vendor category id -> our class index, plus the vendor categories we could not place."""
    ours = {normalize_name(n): i for i, n in enumerate(class_names)}
    alias = {normalize_name(k): normalize_name(v) for k, v in aliases.items()}
    mapping, unknown = {}, {}
    for cid, name in categories.items():
        key = normalize_name(name)
        key = alias.get(key, key)
        if key in ours:
            mapping[cid] = ours[key]
        else:
            unknown[cid] = name
    return mapping, unknown


# -- content checks ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Rejection:
    item: str  # e.g. "annotations[4] (id 12)" or "images[2] (id 999)"
    image: str  # the package file name, or "" when unknown
    reason: str


@dataclass(frozen=True)
class AcceptedBox:
    item: str
    class_id: int
    xyxy: tuple[float, float, float, float]
    clipped: bool
    crowd: bool = False


@dataclass
class CheckedImport:
    boxes: dict[int, list[AcceptedBox]] = field(default_factory=dict)  # package image id -> boxes
    rejections: list[Rejection] = field(default_factory=list)
    clipped: list[AcceptedBox] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)  # package image ids the vendor did not return
    unknown_categories: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PackageImage:
    image_id: int
    file: str
    width: int
    height: int


def check_against_package(coco: CocoFile, package_images: dict[int, PackageImage], class_names: list[str],
                          aliases: dict[str, str], *, tolerance: float, duplicate_iou: float) -> CheckedImport:
    out = CheckedImport()
    mapping, out.unknown_categories = map_categories(coco.categories, class_names, aliases)
    by_name = {p.file.rsplit("/", 1)[-1]: p for p in package_images.values()}
    accepted_images: dict[int, PackageImage] = {}
    rejected_images: set[int] = set()
    for img in coco.images:
        item = f"images[{img.index}] (id {img.id})"
        base = img.file_name.replace("\\", "/").rsplit("/", 1)[-1]
        pkg = package_images.get(img.id)
        if pkg is None:
            hint = f"; '{base}' is image id {by_name[base].image_id} in the package" if base in by_name else ""
            out.rejections.append(Rejection(item, img.file_name, f"unknown image id {img.id}: not in the package{hint}"))
            rejected_images.add(img.id)
        elif base != pkg.file.rsplit("/", 1)[-1]:
            out.rejections.append(Rejection(
                item, img.file_name, f"file name '{base}' does not match the package's '{pkg.file}' for id {img.id}"))
            rejected_images.add(img.id)
        elif (img.width, img.height) not in ((None, None), (pkg.width, pkg.height)):
            out.rejections.append(Rejection(
                item, pkg.file, f"size {img.width}x{img.height} differs from the package's {pkg.width}x{pkg.height}"))
            rejected_images.add(img.id)
        else:
            accepted_images[img.id] = pkg
            out.boxes[img.id] = []
    out.missing = sorted(set(package_images) - set(accepted_images) - rejected_images)

    for box in coco.boxes:
        pkg = accepted_images.get(box.image_id)
        if pkg is None:
            reason = (f"belongs to rejected image id {box.image_id}" if box.image_id in rejected_images
                      else f"unknown image id {box.image_id}: not among the returned package images")
            out.rejections.append(Rejection(box.label, "", reason))
            continue
        if box.category_id not in mapping:
            name = coco.categories.get(box.category_id)
            reason = (f"unknown category '{name}' (id {box.category_id})" if name is not None
                      else f"category id {box.category_id} is not listed in 'categories'")
            out.rejections.append(Rejection(box.label, pkg.file, reason))
            continue
        problem, xyxy, clipped = _fit_box(box.bbox, pkg.width, pkg.height, tolerance)
        if problem:
            out.rejections.append(Rejection(box.label, pkg.file, problem))
            continue
        cls = mapping[box.category_id]
        dup = next((a for a in out.boxes[pkg.image_id] if a.class_id == cls and a.crowd == box.iscrowd
                    and box_iou(np.array(a.xyxy), np.array(xyxy))[0, 0] >= duplicate_iou), None)
        if dup is not None:
            iou = box_iou(np.array(dup.xyxy), np.array(xyxy))[0, 0]
            out.rejections.append(Rejection(box.label, pkg.file, f"duplicate of {dup.item} (IoU {iou:.2f})"))
            continue
        accepted = AcceptedBox(box.label, cls, xyxy, clipped, box.iscrowd)
        out.boxes[pkg.image_id].append(accepted)
        if clipped:
            out.clipped.append(accepted)
    return out


def _fit_box(bbox, width: int, height: int, tolerance: float):
    """(problem or None, clipped xyxy, whether it was clipped)."""
    x, y, w, h = bbox
    if w <= 0 or h <= 0:
        return f"zero-area box (w={w:g}, h={h:g})", None, False
    x1, y1, x2, y2 = x, y, x + w, y + h
    tx, ty = tolerance * width, tolerance * height
    if x1 < -tx or y1 < -ty or x2 > width + tx or y2 > height + ty:
        return (f"box [{x1:g}, {y1:g}, {x2:g}, {y2:g}] lies outside the {width}x{height} image by more than "
                f"the {tolerance:.0%} tolerance"), None, False
    cx1, cy1 = min(max(x1, 0.0), width), min(max(y1, 0.0), height)
    cx2, cy2 = min(max(x2, 0.0), width), min(max(y2, 0.0), height)
    if cx2 - cx1 <= 0 or cy2 - cy1 <= 0:
        return "zero-area box after clipping to the image", None, False
    clipped = (cx1, cy1, cx2, cy2) != (x1, y1, x2, y2)
    return None, (cx1, cy1, cx2, cy2), clipped
