"""On real underwater data, our COCO numbers equal pycocotools' on the same predictions.

First the metric code alone: both sides get the boxes of underwater-det's annotations.json. Then the
whole evaluator (dataset reader, YOLO labels -> pixels, batching, report) against pycocotools given
the same pixel boxes the evaluator read. (annotations.json and the YOLO labels differ by label-text
rounding, < 0.05 px, which can move a box sitting exactly on the 32x32 small/medium border, so each
comparison gives both sides one and the same ground truth.) Predictions are the labelled boxes
jittered, with random scores, some class swaps, some misses and some false alarms.
"""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

from marauder.types import Detections

TOLERANCE = 1e-3  # the bar; in practice the difference is ~1e-6 (label text rounding)


@pytest.fixture(scope="module")
def real_set(shared_data, tmp_path_factory):
    root = shared_data / "underwater-det"
    if not (root / "annotations.json").is_file():
        pytest.skip(f"{root}/annotations.json is absent")
    coco = json.loads((root / "annotations.json").read_text())
    names = (root / "classes.txt").read_text().split()
    yaml_path = tmp_path_factory.mktemp("udet") / "dataset.yaml"
    yaml_path.write_text(f"path: {root}\nnames: {names}\ntest: images\n")
    return root, coco, names, yaml_path


def jittered_predictions(coco: dict, num_classes: int, seed: int = 0) -> dict[str, Detections]:
    """file name -> predictions made from that image's COCO boxes."""
    rng = np.random.default_rng(seed)
    by_image: dict[int, list] = {}
    for ann in coco["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    out = {}
    for im in coco["images"]:
        anns = by_image.get(im["id"], [])
        boxes = np.array([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
                          for a in anns], dtype=float).reshape(-1, 4)
        classes = np.array([a["category_id"] - 1 for a in anns], dtype=int)
        size = np.maximum(boxes[:, 2:] - boxes[:, :2], 1)
        boxes = boxes + rng.normal(0, 0.08, boxes.shape) * np.tile(size, 2)  # IoU spread over 0.5..0.95
        keep = rng.random(len(boxes)) > 0.1  # 10% missed
        classes = np.where(rng.random(len(classes)) < 0.1, rng.integers(0, num_classes, len(classes)), classes)
        n_fp = int(rng.integers(0, 4))
        xy = rng.uniform(0, [im["width"] * 0.8, im["height"] * 0.8], (n_fp, 2))
        fp = np.c_[xy, xy + rng.uniform(8, 150, (n_fp, 2))]
        boxes = np.r_[boxes[keep], fp]
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
        classes = np.r_[classes[keep], rng.integers(0, num_classes, n_fp)]
        scores = rng.random(len(boxes)).astype(np.float32)
        out[im["file_name"]] = Detections(boxes, scores, classes, (im["height"], im["width"]))
    return out


def ground_truth_from_coco(coco: dict) -> dict:
    from marauder.types import GroundTruth

    by_image: dict[int, list] = {}
    for ann in coco["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    out = {}
    for im in coco["images"]:
        anns = by_image.get(im["id"], [])
        boxes = [[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]] for a in anns]
        out[im["file_name"]] = GroundTruth(np.array(boxes, dtype=float).reshape(-1, 4),
                                           [a["category_id"] - 1 for a in anns], (im["height"], im["width"]))
    return out


def coco_from_ground_truth(coco: dict, gts: dict) -> dict:
    """annotations.json with its boxes replaced by the given pixel boxes (area = w * h)."""
    anns = []
    for im in coco["images"]:
        g = gts[im["file_name"]]
        for b, c in zip(g.xyxy.astype(float), g.class_ids):
            w, h = b[2] - b[0], b[3] - b[1]
            anns.append({"id": len(anns) + 1, "image_id": im["id"], "category_id": int(c) + 1,
                         "bbox": [b[0], b[1], w, h], "area": w * h, "iscrowd": 0})
    return {**coco, "annotations": anns}


def pycocotools_stats(coco: dict, preds: dict[str, Detections]) -> np.ndarray:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    results = []
    for im in coco["images"]:
        d = preds[im["file_name"]]
        for b, s, c in zip(d.xyxy.astype(float), d.scores.astype(float), d.class_ids):
            results.append({"image_id": im["id"], "category_id": int(c) + 1, "score": s,
                            "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]]})
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = coco
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(results), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


class ReplayPredictor:
    """Returns the prepared predictions in the order the evaluator visits images (sorted by name)."""

    def __init__(self, class_names, predictions_in_order):
        self.class_names = list(class_names)
        self._queue = list(predictions_in_order)

    def predict(self, images):
        out, self._queue = self._queue[:len(images)], self._queue[len(images):]
        for d, im in zip(out, images):
            assert d.image_size == im.shape[:2]  # same image as the prepared predictions
        return out


def test_coco_metrics_equal_pycocotools_on_real_labels(real_set):
    from marauder.evaluate import coco_metrics

    root, coco, names, _ = real_set
    preds = jittered_predictions(coco, len(names))
    gts = ground_truth_from_coco(coco)
    files = [im["file_name"] for im in coco["images"]]
    ours = coco_metrics([preds[f] for f in files], [gts[f] for f in files], len(names))
    ref = pycocotools_stats(coco, preds)
    assert ref[0] > 0.2  # a meaningful operating range, not all zeros
    assert np.abs(np.asarray(ours["stats"]) - ref).max() < TOLERANCE


def test_evaluate_model_reports_pycocotools_numbers_on_real_images(real_set, tmp_path):
    from marauder.data.dataset import read_ground_truth
    from marauder.evaluate import evaluate_model

    root, coco, names, yaml_path = real_set
    preds = jittered_predictions(coco, len(names), seed=1)
    ordered = [preds[name] for name in sorted(preds)]
    report = evaluate_model(ReplayPredictor(names, ordered), yaml_path, critical_species=["shark", "stingray"],
                            bootstrap=200, batch=32, output_dir=tmp_path / "report")
    read = {im["file_name"]: read_ground_truth(root / "images" / im["file_name"], num_classes=len(names),
                                               size=(im["height"], im["width"])) for im in coco["images"]}
    labelled = ground_truth_from_coco(coco)
    for name, g in read.items():  # the YOLO labels are the same boxes as annotations.json
        assert g.class_ids.tolist() == labelled[name].class_ids.tolist()
        np.testing.assert_allclose(g.xyxy, labelled[name].xyxy, atol=0.05)
    ref = pycocotools_stats(coco_from_ground_truth(coco, read), preds)
    s = report.summary
    keys = ("mAP50-95", "mAP50", "mAP75", "AP_small", "AP_medium", "AP_large")
    for key, value in zip(keys, ref[:6]):
        assert s[key] == pytest.approx(value, abs=TOLERANCE), key
    assert s["num_images"] == len(coco["images"])
    shark = s["critical_recall"]["shark"]
    assert shark["ci_low"] <= shark["recall"] <= shark["ci_high"] and 0.5 < shark["recall"] < 1
    assert s["per_class"]["fish"]["support"] == sum(a["category_id"] == 1 for a in coco["annotations"])
    assert {p.name for p in (tmp_path / "report" / "plots").iterdir()} == {
        "pr_curves.png", "confusion_matrix.png", "reliability.png", "worst_false_negatives.png",
        "worst_false_positives.png"}
