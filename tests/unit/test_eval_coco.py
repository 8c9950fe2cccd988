"""COCO evaluator: literal cases with hand-computed answers, then random cases against pycocotools."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from marauder.errors import DataError
from marauder.evaluate.coco import coco_metrics
from marauder.types import Detections, GroundTruth


def det(boxes, scores, classes, size=(480, 640)):
    return Detections(np.array(boxes, dtype=float).reshape(-1, 4), scores, classes, size)


def gt(boxes, classes, size=(480, 640)):
    return GroundTruth(np.array(boxes, dtype=float).reshape(-1, 4), classes, size)


BOX = [100, 100, 200, 200]

# (name, predictions, ground truths, num_classes, expected {stat: value})
CASES = [
    ("perfect", [det([BOX], [0.9], [0])], [gt([BOX], [0])], 1, {"mAP50-95": 1.0, "mAP50": 1.0, "AR100": 1.0}),
    # IoU 0.62: a hit at thresholds 0.50, 0.55, 0.60 only -> 3 of 10 thresholds
    ("iou_0.62", [det([[100, 100, 200, 162]], [0.9], [0])], [gt([BOX], [0])], 1,
     {"mAP50-95": 0.3, "mAP50": 1.0, "mAP75": 0.0}),
    # one of two objects found: precision 1 up to recall 0.5 -> 51 of 101 recall points
    ("half_recall", [det([BOX], [0.9], [0])], [gt([BOX, [300, 300, 400, 400]], [0, 0])], 1,
     {"mAP50": 51 / 101, "AR100": 0.5}),
    # a false positive ranked above the true positive: precision 0.5 at every recall
    ("fp_first", [det([[400, 300, 500, 400], BOX], [0.9, 0.8], [0, 0])], [gt([BOX], [0])], 1, {"mAP50": 0.5}),
    # the right box with the wrong class: nothing found, and class 1 has only a false positive
    ("wrong_class", [det([BOX], [0.9], [1])], [gt([BOX], [0])], 2, {"mAP50": 0.0, "mAP50-95": 0.0}),
    # 20x20 is small, 100x100 large, no medium object -> AP_medium undefined (-1 like pycocotools)
    ("areas", [det([[10, 10, 30, 30], BOX], [0.9, 0.8], [0, 0])], [gt([[10, 10, 30, 30], BOX], [0, 0])], 1,
     {"AP_small": 1.0, "AP_medium": -1.0, "AP_large": 1.0}),
    # no ground truth at all: every AP undefined
    ("no_gt", [det([BOX], [0.9], [0])], [gt([], [])], 1, {"mAP50-95": -1.0}),
    # a duplicate detection of one object is a false positive (ranked after the hit)
    ("duplicate", [det([BOX, BOX], [0.9, 0.8], [0, 0])], [gt([BOX], [0])], 1, {"mAP50": 1.0, "AR1": 1.0}),
    # two images, one object each, one missed: recall 0.5
    ("two_images", [det([BOX], [0.9], [0]), det([], [], [])], [gt([BOX], [0]), gt([BOX], [0])], 1,
     {"mAP50": 51 / 101}),
]


@pytest.mark.parametrize("name,preds,gts,nc,expected", CASES, ids=[c[0] for c in CASES])
def test_literal_cases(name, preds, gts, nc, expected):
    out = coco_metrics(preds, gts, nc)
    for key, value in expected.items():
        assert out[key] == pytest.approx(value, abs=1e-12), key


def test_per_class_ap_is_nan_for_classes_without_labels():
    out = coco_metrics([det([BOX], [0.9], [0])], [gt([BOX], [0])], 3)
    assert out["ap_per_class"][0] == pytest.approx(1.0)
    assert np.isnan(out["ap_per_class"][1]) and np.isnan(out["ap_per_class"][2])


@pytest.mark.parametrize("where,preds,gts", [
    ("predictions", [det([BOX], [0.9], [3])], [gt([BOX], [0])]),
    ("ground truth", [det([BOX], [0.9], [0])], [gt([BOX], [7])]),
    ("predictions", [det([BOX], [0.9], [-1])], [gt([BOX], [0])]),
])
def test_class_ids_outside_dataset_are_errors(where, preds, gts):
    with pytest.raises(DataError, match=f"{where} of image #0 have class id .* outside the dataset's 2 classes"):
        coco_metrics(preds, gts, 2)


def test_non_finite_predictions_are_errors():
    with pytest.raises(DataError, match="predictions of image #1 have a NaN or infinite box or score"):
        coco_metrics([det([BOX], [0.9], [0]), det([BOX], [float("nan")], [0])], [gt([BOX], [0])] * 2, 1)


def test_length_mismatch_is_an_error():
    with pytest.raises(DataError, match="2 predictions for 1 images"):
        coco_metrics([det([], [], []), det([], [], [])], [gt([], [])], 1)


def _random_case(seed: int, n_img: int = 40, n_cls: int = 3, crowd: bool = False):
    """Random boxes with the awkward cases mixed in: ties, duplicates, a crowded image (> 100 per
    class), boxes exactly on the small/medium boundary, images without labels or without detections."""
    rng = np.random.default_rng(seed)
    preds, gts = [], []
    for i in range(n_img):
        n = int(rng.integers(0, 12))
        xy = rng.uniform(0, 400, (n, 2))
        wh = rng.choice([32.0, 96.0, 10.0, 50.0, 150.0], (n, 2)) if i % 5 == 0 else rng.uniform(5, 200, (n, 2))
        g = np.c_[xy, xy + wh]
        gc = rng.integers(0, n_cls, n)
        p = g + rng.normal(0, 5, g.shape)
        p[:, 2:] = np.maximum(p[:, 2:], p[:, :2] + 1)
        pc = np.where(rng.random(n) < 0.8, gc, rng.integers(0, n_cls, n))
        s = np.round(rng.random(n), 1)  # coarse scores: many ties
        if i == 3:  # crowded: 130 detections of one class -> maxDets truncation
            xy = rng.uniform(0, 400, (130, 2))
            p = np.r_[p, np.c_[xy, xy + 40]]
            pc = np.r_[pc, np.zeros(130, int)]
            s = np.r_[s, rng.random(130)]
        if i == 4:  # exact duplicates of the first label
            p = np.r_[p, g[:1], g[:1]] if n else p
            pc = np.r_[pc, gc[:1], gc[:1]] if n else pc
            s = np.r_[s, [0.5, 0.5]] if n else s
        if i == 7:
            p, pc, s = p[:0], pc[:0], s[:0]
        if i == 8:
            g, gc = g[:0], gc[:0]
        is_crowd = rng.random(len(g)) < 0.25 if crowd else None
        if crowd and i % 4 == 1:  # a school of fish: one crowd region holding many detections
            region = np.array([[50.0, 50.0, 300.0, 250.0]])
            g, gc, is_crowd = np.r_[g, region], np.r_[gc, [0]], np.r_[is_crowd, [True]]
            xy = rng.uniform(60, 240, (15, 2))
            p = np.r_[p, np.c_[xy, xy + 30]]
            pc = np.r_[pc, np.zeros(15, int)]
            s = np.r_[s, np.round(rng.random(15), 2)]
        preds.append(Detections(p, s, pc, (480, 640)))
        gts.append(GroundTruth(g, gc, (480, 640), iscrowd=is_crowd))
    return preds, gts


def to_pycocotools(preds, gts, n_cls, max_dets=(1, 10, 100)):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, anns, results = [], [], []
    for i, (p, g) in enumerate(zip(preds, gts), start=1):
        images.append({"id": i, "width": 640, "height": 480})
        for b, c, crowd in zip(g.xyxy.astype(float), g.class_ids, g.iscrowd):
            w, h = b[2] - b[0], b[3] - b[1]
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(c) + 1,
                         "bbox": [b[0], b[1], w, h], "area": w * h, "iscrowd": int(crowd)})
        for b, c, s in zip(p.xyxy.astype(float), p.class_ids, p.scores.astype(float)):
            results.append({"image_id": i, "category_id": int(c) + 1, "score": s,
                            "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]]})
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = {"images": images, "annotations": anns,
                           "categories": [{"id": k + 1, "name": str(k)} for k in range(n_cls)]}
        coco_gt.createIndex()
        ev = COCOeval(coco_gt, coco_gt.loadRes(results), "bbox")
        ev.params.maxDets = list(max_dets)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


@pytest.mark.parametrize("crowd", [False, True], ids=["plain", "with-crowd-regions"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_pycocotools_on_awkward_random_cases(seed, crowd):
    preds, gts = _random_case(seed, crowd=crowd)
    ours = coco_metrics(preds, gts, 3)
    ref = to_pycocotools(preds, gts, 3)
    np.testing.assert_allclose(ours["stats"], ref.stats, atol=1e-12)
    np.testing.assert_allclose(ours["precision"], ref.eval["precision"], atol=1e-12)
    np.testing.assert_allclose(ours["recall"], ref.eval["recall"], atol=1e-12)


def test_custom_max_dets_equal_pycocotools():
    preds, gts = _random_case(5)
    ours = coco_metrics(preds, gts, 3, max_dets=(1, 3, 5))
    ref = to_pycocotools(preds, gts, 3, max_dets=(1, 3, 5))
    np.testing.assert_allclose(ours["precision"], ref.eval["precision"], atol=1e-12)
    np.testing.assert_allclose(ours["recall"], ref.eval["recall"], atol=1e-12)


def test_an_image_with_thousands_of_labels_of_one_class():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 2000, (5000, 2))
    boxes = np.c_[xy, xy + 20]
    preds = [det(boxes[:8] + 1, rng.random(8), np.zeros(8, int), (2100, 2100))]  # > 4096 labels: padding
    gts = [gt(boxes, np.zeros(5000, int), (2100, 2100))]
    ours = coco_metrics(preds, gts, 1)
    ref = to_pycocotools(preds, gts, 1)
    np.testing.assert_allclose(ours["stats"], ref.stats, atol=1e-12)
