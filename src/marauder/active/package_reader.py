"""Reading back one of our own annotation packages (checked like any zip: it may have travelled)."""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError
from ..formats.coco import coco_bbox_to_xyxy
from .safezip import ZipLimits, check_zip, parse_json_bytes, read_member
from .vendor_coco import PackageImage

_MAX_META = 64 << 20


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
        manifest = read_member(zf, infos["manifest.csv"], _MAX_META).decode("utf-8")
    try:
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
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"annotation package is damaged ({type(exc).__name__}: {exc})", file=str(path)) from None
    missing = [p.file for p in images.values() if p.file not in infos]
    if missing:
        raise DataError(f"annotation package lacks {len(missing)} image(s), e.g. {missing[0]}", file=str(path))
    return Package(path, package_id, class_names, images, sha, pre, infos)
