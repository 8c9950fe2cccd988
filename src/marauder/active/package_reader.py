"""Reading back one of our own annotation packages (checked like any zip: it may have travelled)."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError
from ..formats.coco import coco_bbox_to_xyxy
from .safezip import ZipLimits, check_zip, parse_json_bytes, read_member
from .vendor_coco import PackageImage

_MAX_META = 64 << 20
# a package id names files and folders (packages/<id>.zip, imports/<id>/): no separators, no '..'
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*")


def is_safe_package_id(value) -> bool:
    return isinstance(value, str) and len(value) <= 128 and _SAFE_ID.fullmatch(value) is not None


@dataclass(frozen=True)
class Package:
    path: Path
    package_id: str
    class_names: list[str]
    images: dict[int, PackageImage]
    sha256: dict[int, str]
    pre_annotations: dict[int, list[tuple[int, tuple]]]  # image id -> [(class id, xyxy)]
    members: dict[str, zipfile.ZipInfo]


def read_package(path: str | Path, limits: ZipLimits = ZipLimits(), max_json_bytes: int = 256 << 20) -> Package:
    path = Path(path)
    infos = {i.filename: i for i in check_zip(path, limits)}
    for required in ("package.json", "annotations.json", "manifest.csv"):
        if required not in infos:
            raise DataError(f"not a marauder annotation package: '{required}' is missing", file=str(path))
    with zipfile.ZipFile(path) as zf:
        meta = parse_json_bytes(read_member(zf, infos["package.json"], _MAX_META), f"{path}!package.json", _MAX_META)
        coco = parse_json_bytes(read_member(zf, infos["annotations.json"], max_json_bytes),
                                f"{path}!annotations.json", max_json_bytes)
        manifest_bytes = read_member(zf, infos["manifest.csv"], _MAX_META)
    try:
        manifest = manifest_bytes.decode("utf-8")
        package_id = str(meta["package_id"])
        class_names = [str(n) for n in meta["classes"]]
        images, sha = {}, {}
        for rec in csv.DictReader(io.StringIO(manifest)):
            iid = int(rec["image_id"])
            images[iid] = PackageImage(iid, rec["file"], int(rec["width"]), int(rec["height"]))
            sha[iid] = rec["sha256"]
        pre: dict[int, list[tuple[int, tuple]]] = {i: [] for i in images}
        for ann in coco["annotations"]:
            pre.setdefault(int(ann["image_id"]), []).append(
                (int(ann["category_id"]) - 1, tuple(coco_bbox_to_xyxy(ann["bbox"]))))
    except (KeyError, TypeError, ValueError, csv.Error) as exc:
        raise DataError(f"annotation package is damaged ({type(exc).__name__}: {exc})", file=str(path)) from None
    if not is_safe_package_id(package_id):
        raise DataError(f"annotation package has an unsafe package id {package_id!r:.60}", file=str(path))
    missing = [p.file for p in images.values() if p.file not in infos]
    if missing:
        raise DataError(f"annotation package lacks {len(missing)} image(s), e.g. {missing[0]}", file=str(path))
    return Package(path, package_id, class_names, images, sha, pre, infos)
