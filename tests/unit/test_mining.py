"""Hard negative mining: which detections are negatives, which go for review, and what lands on disk."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from marauder.active.package_reader import read_package
from marauder.data.dataset import load_dataset_yaml, read_ground_truth
from marauder.train import mining
from marauder.types import Detections, GroundTruth

SIZE = (100, 200)  # (height, width)
GT = GroundTruth(np.array([[10, 10, 50, 50]]), np.array([1]), SIZE)


def _det(boxes, scores, classes) -> Detections:
    return Detections(np.array(boxes, dtype=float).reshape(-1, 4), np.array(scores), np.array(classes), SIZE)


@pytest.mark.parametrize(("box", "score", "cls", "gt", "expect"), [
    ([10, 10, 50, 50], 0.9, 1, GT, "none"),            # matches its GT box: a true positive
    ([12, 12, 52, 52], 0.5, 1, GT, "none"),            # IoU ~0.82 with the GT box
    ([10, 10, 50, 50], 0.5, 2, GT, "negative"),        # right place, wrong class
    ([120, 40, 160, 80], 0.5, 1, GT, "negative"),      # nothing there
    ([120, 40, 160, 80], 0.95, 1, GT, "review"),       # very confident, nothing boxed: maybe an unboxed animal
    ([120, 40, 160, 80], 0.1, 1, GT, "none"),          # below the mining confidence
    ([120, 40, 160, 80], 0.95, 1, None, "negative"),   # known background: never reviewed
    ([120, 40, 160, 80], 0.5, 3, None, "none"),        # class not watched
])
def test_classify_detections(box, score, cls, gt, expect):
    neg, rev = mining.classify_detections(_det([box], [score], [cls]), gt, {1, 2}, confidence=0.25,
                                          review_confidence=0.8)
    assert (len(neg), len(rev)) == {"none": (0, 0), "negative": (1, 0), "review": (0, 1)}[expect]


def test_all_classes_watched_when_none():
    neg, _ = mining.classify_detections(_det([[120, 40, 160, 80]], [0.5], [3]), GT, None, confidence=0.25,
                                        review_confidence=0.8)
    assert len(neg) == 1


@pytest.mark.parametrize(("box", "context", "expect"), [
    ([90, 40, 110, 60], 0.5, (80, 30, 120, 70)),     # 20 px box + 10 px each side -> 40, min 32 satisfied
    ([95, 45, 105, 55], 0.5, (84, 34, 116, 66)),     # tiny box: grown to the 32 px minimum
    ([0, 0, 20, 20], 0.5, (0, 0, 40, 40)),           # corner: full 40 px window, shifted inside
    ([0, 0, 40, 40], 1.0, (0, 0, 120, 100)),          # 40 px each side, shifted inside the image
])
def test_crop_window(box, context, expect):
    assert mining.crop_window(np.array(box, float), SIZE, context) == expect


class FullLabelPredictor:
    """A perfect detector for planted images: it reports every animal that is really in the picture
    (read from the complete labels), whatever the label files the miner sees say."""

    def __init__(self, truth: dict[str, GroundTruth], class_names: list[str], score: float = 0.95):
        self.truth, self.class_names, self.score = truth, class_names, score
        self.calls = 0

    def predict(self, images):
        out = []
        for image in images:
            gt = self.truth[image.tobytes()[:4096].hex()]
            out.append(Detections(gt.xyxy, np.full(len(gt), self.score), gt.class_ids, image.shape[:2]))
        self.calls += 1
        return out


def _key(path: Path) -> str:
    return cv2.imread(str(path)).tobytes()[:4096].hex()


def test_review_export_triggers_on_planted_unboxed_animal(organized_sample, tmp_path):
    """One train image loses a box from its label file: the animal is still there, the detector finds it
    with high confidence, so mining sends that image for review (not to the negatives)."""
    import shutil

    data = tmp_path / "organized"
    shutil.copytree(organized_sample, data)
    spec = load_dataset_yaml(data / "dataset.yaml")
    pool = mining.mining_pool(spec, [])
    truth = {_key(p.image): read_ground_truth(p.image, num_classes=spec.nc) for p in pool}
    planted = next(p.image for p in pool if len(truth[_key(p.image)]) >= 2)
    label = data / "labels" / "train" / f"{planted.stem}.txt"
    lines = label.read_text().splitlines()
    label.write_text("\n".join(lines[1:]) + "\n")  # the first animal is no longer boxed
    (data / "images" / "train" / "broken.jpg").write_bytes(b"not a jpeg")  # unreadable: skipped, counted

    predictor = FullLabelPredictor(truth, spec.names)
    result = mining.mine_false_positives(predictor, mining.mining_pool(spec, []), spec.nc, None, confidence=0.25,
                                         review_confidence=0.8)
    assert [f.item.image for f in result.for_review] == [planted]
    assert result.with_negatives == []
    assert len(result.unreadable) == 1 and "broken.jpg" in result.unreadable[0]
    assert result.scanned == len(pool)

    pkg = mining.export_review(result.for_review, spec.names, tmp_path / "review.zip", package_id="rev-1",
                               metadata={"iteration": 1})
    back = read_package(pkg.path)
    assert back.package_id == "rev-1" and len(back.images) == 1
    boxes = back.pre_annotations[1]
    # existing labels plus the unboxed animal, which is the removed first line's class
    assert len(boxes) == len(lines)
    assert int(lines[0].split()[0]) in [c for c, _ in boxes]


def test_negatives_written_with_right_labels(organized_sample, tmp_path):
    """images mode: a background image gets an empty label file, a labelled image keeps its own boxes;
    crops mode: one crop per false positive with the GT boxes inside it."""
    spec = load_dataset_yaml(organized_sample / "dataset.yaml")
    labelled = mining.mining_pool(spec, [])[0]
    bg_dir = tmp_path / "bg"
    bg_dir.mkdir()
    cv2.imwrite(str(bg_dir / "sand.jpg"), np.full((120, 160, 3), 90, np.uint8))
    background = mining.PoolItem(bg_dir / "sand.jpg", "bg", False)
    gt = read_ground_truth(labelled.image, num_classes=spec.nc)
    fp = Detections(np.array([[0, 0, 20, 20]]), np.array([0.5]), np.array([0]), gt.image_size)
    result = mining.MiningResult([mining.Findings(labelled, fp, Detections.empty(gt.image_size), gt),
                                  mining.Findings(background, fp, Detections.empty((120, 160)), None)], 2)

    chosen = mining.select_negatives(result, "images", known={str(labelled.image)}, limit=10)
    assert [k for k, _, _ in chosen] == [str(bg_dir / "sand.jpg")]  # already-known negatives are not re-added
    chosen = mining.select_negatives(result, "images", known=set(), limit=10)
    paths = mining.write_negatives(chosen, "images", tmp_path / "neg")
    labels = [(p.parent.parent / "labels" / f"{p.stem}.txt").read_text() for p in paths]
    by_source = dict(zip([f.item.labelled for _, f, _ in chosen], labels))
    assert by_source[False] == ""
    assert len(by_source[True].splitlines()) == len(gt)
    images, keys, manifest = mining.read_negatives(tmp_path / "neg")
    assert images == paths and manifest["mode"] == "images" and len(keys) == 2

    crops = mining.write_negatives(mining.select_negatives(result, "crops", set(), 10), "crops", tmp_path / "crops")
    assert len(crops) == 2 and all(cv2.imread(str(p)).shape[0] >= 32 for p in crops)
