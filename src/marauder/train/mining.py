"""Hard negative mining: find where the model fires without an animal, and turn that into training data.

The mining pool is the train split (labelled) plus known-background folders (no animals by
construction). A detection is a false positive when no ground-truth box of its class overlaps it at
IoU >= match_iou (labelled images) or, on a background image, whenever it is confident at all.

FathomNet-style labels are incomplete, so on labelled images a *very* confident false positive is
more likely an animal nobody boxed than a mistake: those go to a review package (the active-learning
annotation format) instead of becoming negatives, and their image is not used as a negative at all.

Negatives are written as a small YOLO folder (images/, labels/): a background image with an empty
label file; a labelled image with its own labels (an empty file would teach that its real animals are
background); or, in "crops" mode, a crop around each false positive labelled with whatever
ground-truth boxes fall inside it (usually none).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..data.dataset import DatasetSpec, iter_split, label_path_for_image, read_ground_truth
from ..errors import DataError
from ..formats.yolo import format_labels, read_labels, xyxy_to_rows
from ..fsio import atomic_directory, list_images, sha256_file
from ..log import get_logger, progress
from ..types import Detections, GroundTruth, box_iou

log = get_logger("train.mining")
MANIFEST = "negatives.json"


@dataclass(frozen=True)
class PoolItem:
    image: Path
    source: str  # "train" or the background folder as configured
    labelled: bool  # False: a known background image, every confident box is wrong


@dataclass
class Findings:
    item: PoolItem
    negatives: Detections  # confident false positives, usable as negatives
    review: Detections  # very confident false positives on a labelled image: maybe an unboxed animal
    ground_truth: GroundTruth | None

    @property
    def negative_score(self) -> float:
        return float(self.negatives.scores.max()) if len(self.negatives) else 0.0


@dataclass
class MiningResult:
    findings: list[Findings]  # only images with a false positive of either kind
    scanned: int
    unreadable: list[str] = field(default_factory=list)  # "path: why"

    @property
    def with_negatives(self) -> list[Findings]:
        return [f for f in self.findings if len(f.negatives) and not len(f.review)]

    @property
    def for_review(self) -> list[Findings]:
        return [f for f in self.findings if len(f.review)]


def mining_pool(spec: DatasetSpec, background_dirs: Iterable[tuple[str, Path]]) -> list[PoolItem]:
    """Train split images (labelled) followed by every image under each background folder."""
    items = [PoolItem(image, "train", True) for image, _ in iter_split(spec, "train")]
    for name, folder in background_dirs:
        if not Path(folder).is_dir():
            raise DataError("critical_species.hard_negative_mining.background_dirs: folder not found", file=str(folder))
        items += [PoolItem(p, name, False) for p in list_images(folder, recursive=True)]
    return items


def classify_detections(det: Detections, gt: GroundTruth | None, classes: set[int] | None, *, confidence: float,
                        review_confidence: float, match_iou: float = 0.5) -> tuple[Detections, Detections]:
    """(negatives, review) among one image's detections of the watched classes at >= confidence.

    gt None means a known background image: every such detection is a negative, none is reviewed.
    """
    keep = det.scores >= confidence
    if classes is not None:
        keep &= np.isin(det.class_ids, list(classes))
    det = det[keep]
    if gt is None:
        return det, Detections.empty(det.image_size)
    false_pos = np.ones(len(det), dtype=bool)
    if len(det) and len(gt):
        iou = box_iou(det.xyxy, gt.xyxy)
        same_class = det.class_ids[:, None] == gt.class_ids[None, :]
        false_pos = ~((iou >= match_iou) & same_class).any(axis=1)
    fp = det[false_pos]
    very = fp.scores >= review_confidence
    return fp[~very], fp[very]


def _read(item: PoolItem, num_classes: int) -> tuple[np.ndarray, GroundTruth | None]:
    image = cv2.imread(str(item.image), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError("cannot decode image", file=str(item.image))
    gt = read_ground_truth(item.image, num_classes=num_classes, size=image.shape[:2]) if item.labelled else None
    return image, gt


def mine_false_positives(predictor, pool: Sequence[PoolItem], num_classes: int, classes: set[int] | None, *,
                         confidence: float, review_confidence: float, match_iou: float = 0.5, batch: int = 16
                         ) -> MiningResult:
    """Predict over the pool; return the images with false positives. Unreadable images (or label
    files) are skipped and listed, never fatal: a mining pool is often a loose folder of frames."""
    findings: list[Findings] = []
    unreadable: list[str] = []
    scanned = 0
    chunks = [pool[i:i + batch] for i in range(0, len(pool), max(1, batch))]
    for chunk in progress(chunks, "mining false positives (batches)"):
        loaded = []
        for item in chunk:
            try:
                loaded.append((item, *_read(item, num_classes)))
            except DataError as exc:
                unreadable.append(f"{item.image}: {exc}")
        if not loaded:
            continue
        dets = predictor.predict([image for _, image, _ in loaded])
        for (item, image, gt), det in zip(loaded, dets):
            scanned += 1
            det = Detections(det.xyxy, det.scores, det.class_ids, image.shape[:2])
            negatives, review = classify_detections(det, gt, classes, confidence=confidence,
                                                    review_confidence=review_confidence, match_iou=match_iou)
            if len(negatives) or len(review):
                findings.append(Findings(item, negatives, review, gt))
    if unreadable:
        log.warning("mining pool: %d unreadable image(s) skipped, e.g. %s", len(unreadable), unreadable[0])
    return MiningResult(findings, scanned, unreadable)


# -- negatives on disk --------------------------------------------------------------------------

def negative_keys(found: Findings, mode: str) -> list[str]:
    """Identity of what a finding adds: the image, or one crop per false positive box."""
    if mode == "images":
        return [str(found.item.image)]
    return [f"{found.item.image}#{','.join(str(int(round(v))) for v in box)}" for box in found.negatives.xyxy]


def select_negatives(result: MiningResult, mode: str, known: set[str], limit: int) -> list[tuple[str, Findings, int]]:
    """The strongest new negatives, up to `limit`: (key, finding, index of the box or -1 for a whole image)."""
    ranked = []
    for f in result.with_negatives:
        keys = negative_keys(f, mode)
        if mode == "images":
            ranked.append((f.negative_score, keys[0], f, -1))
        else:
            ranked += [(float(f.negatives.scores[i]), k, f, i) for i, k in enumerate(keys)]
    ranked.sort(key=lambda r: (-r[0], r[1]))  # strongest first; the key breaks ties reproducibly
    out, seen = [], set(known)
    for _score, key, f, index in ranked:
        if key in seen:
            continue
        seen.add(key)
        out.append((key, f, index))
        if len(out) >= limit:
            break
    return out


def crop_window(box: np.ndarray, image_size: tuple[int, int], context: float, min_size: int = 32
                ) -> tuple[int, int, int, int]:
    """The box grown by `context` x its size on every side (at least min_size px), shifted to lie
    inside the image (a false positive at the border keeps its context on the inner side)."""
    h, w = image_size
    x1, y1, x2, y2 = (float(v) for v in box)

    def span(lo: float, hi: float, limit: int) -> tuple[int, int]:
        half = max(min_size / 2, max(1.0, hi - lo) * (0.5 + context))
        a, b = (lo + hi) / 2 - half, (lo + hi) / 2 + half
        if a < 0:
            a, b = 0.0, b - a
        if b > limit:
            a, b = a - (b - limit), float(limit)
        return int(max(0.0, np.floor(a))), int(min(limit, np.ceil(b)))

    (ax, bx), (ay, by) = span(x1, x2, w), span(y1, y2, h)
    return ax, ay, bx, by


def _labels_inside(gt: GroundTruth | None, window: tuple[int, int, int, int], min_visible: float = 0.3) -> str:
    """Ground-truth boxes that remain visible in a crop, as YOLO rows of the crop."""
    if gt is None or not len(gt):
        return ""
    x0, y0, x1, y1 = window
    boxes = gt.xyxy.astype(np.float64).copy()
    area = np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 0, None), axis=1)
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], x0, x1) - x0
    boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], y0, y1) - y0
    visible = np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 0, None), axis=1)
    keep = visible >= min_visible * np.maximum(area, 1e-9)
    if not keep.any():
        return ""
    return format_labels(xyxy_to_rows(boxes[keep], gt.class_ids[keep], (y1 - y0, x1 - x0)))


def write_negatives(selected: Sequence[tuple[str, Findings, int]], mode: str, out_dir: Path, *,
                    crop_context: float = 0.5, metadata: dict | None = None) -> list[Path]:
    """Write the selected negatives as out_dir/images + out_dir/labels (replacing the folder atomically)
    with a manifest; return the image paths (as they will be after the rename)."""
    out_dir = Path(out_dir)
    rows, names = [], []
    with atomic_directory(out_dir, replace=True) as tmp:
        (tmp / "images").mkdir()
        (tmp / "labels").mkdir()
        for n, (key, f, index) in enumerate(selected):
            src = f.item.image
            if mode == "images":
                name = f"{n:05d}_{src.stem}{src.suffix.lower()}"
                shutil.copyfile(src, tmp / "images" / name)
                labels = ""
                if f.item.labelled:  # keep its real boxes: the unboxed false-positive region is the lesson
                    labels = format_labels(read_labels(label_path_for_image(src), strict=False))
                box, score, cls = None, f.negative_score, None
            else:
                image = cv2.imread(str(src), cv2.IMREAD_COLOR)
                if image is None:
                    raise DataError("image became unreadable while writing negatives", file=str(src))
                window = crop_window(f.negatives.xyxy[index], image.shape[:2], crop_context)
                x0, y0, x1, y1 = window
                name = f"{n:05d}_{src.stem}_crop.jpg"
                if not cv2.imwrite(str(tmp / "images" / name), image[y0:y1, x0:x1]):
                    raise DataError("could not write crop", file=str(tmp / "images" / name))
                labels = _labels_inside(f.ground_truth, window)
                box = [round(float(v), 1) for v in f.negatives.xyxy[index]]
                score, cls = float(f.negatives.scores[index]), int(f.negatives.class_ids[index])
            (tmp / "labels" / Path(name).with_suffix(".txt")).write_text(labels, encoding="utf-8")
            names.append(name)
            rows.append({"key": key, "file": f"images/{name}", "source_image": str(src), "source": f.item.source,
                         "labelled": f.item.labelled, "score": round(score, 6), "class_id": cls, "box": box})
        (tmp / MANIFEST).write_text(json.dumps({**(metadata or {}), "mode": mode, "negatives": rows}, indent=1),
                                    encoding="utf-8")
    return [out_dir / "images" / name for name in names]


def read_negatives(out_dir: Path) -> tuple[list[Path], list[str], dict]:
    """(image paths, keys, manifest) of a negatives folder written by `write_negatives`."""
    manifest = json.loads((Path(out_dir) / MANIFEST).read_text(encoding="utf-8"))
    rows = manifest.get("negatives", [])
    return [Path(out_dir) / r["file"] for r in rows], [r["key"] for r in rows], manifest


# -- review export --------------------------------------------------------------------------------

def export_review(findings: Sequence[Findings], class_names: list[str], target: Path, *, package_id: str,
                  metadata: dict, thumbnail_size: int = 256, example_crops: dict[str, bytes] | None = None):
    """An annotation package (the active-learning format) of labelled images where the model is very
    sure of an animal nobody boxed. Pre-annotations are the existing labels (score 1.0) plus the
    flagged detections, so the reviewer corrects one complete picture."""
    from ..active.package import write_package
    from ..active.selection import Candidate

    candidates = []
    for f in sorted(findings, key=lambda f: (-float(f.review.scores.max()), str(f.item.image))):
        gt = f.ground_truth
        known = Detections(gt.xyxy, np.ones(len(gt)), gt.class_ids, gt.image_size) if gt is not None else \
            Detections.empty(f.review.image_size)
        dets = Detections.concat([known, f.review])
        candidates.append(Candidate(str(f.item.image), f.item.source, sha256_file(f.item.image),
                                    float(f.review.scores.max()), dets))
    meta = {"created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "purpose": "critical_species_review",
            "pre_annotations": "existing labels (score 1.0) + unlabelled confident detections", **metadata}
    return write_package(target, package_id, candidates, class_names, crops=example_crops or {},
                         pre_annotation_confidence=0.0, thumbnail_size=thumbnail_size, metadata=meta)
