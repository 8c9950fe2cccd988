"""evaluate_model on a tiny generated dataset: one decode per image, batching, per-class thresholds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from marauder.types import Detections

NAMES = ["lionfish", "abalone", "rockfish"]


def build_tiny_set(root: Path, n_images: int = 6) -> tuple[Path, list]:
    """Noise images with two painted objects each, YOLO labels, dataset.yaml -> (yaml, labels in name order)."""
    import cv2

    rng = np.random.default_rng(0)
    labels = []
    for split_dir in ("images/test", "labels/test"):
        (root / split_dir).mkdir(parents=True, exist_ok=True)
    for i in range(n_images):
        image = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
        boxes = np.array([[20, 20, 60, 70], [70, 30, 120, 90]], dtype=float)
        classes = np.array([i % 3, (i + 1) % 3])
        for b in boxes.astype(int):
            cv2.rectangle(image, tuple(b[:2]), tuple(b[2:]), (0, 200, 255), -1)
        cv2.imwrite(str(root / "images" / "test" / f"img{i}.jpg"), image)
        rows = [f"{c} {(b[0] + b[2]) / 256:.6f} {(b[1] + b[3]) / 192:.6f} {(b[2] - b[0]) / 128:.6f} "
                f"{(b[3] - b[1]) / 96:.6f}" for b, c in zip(boxes, classes)]
        (root / "labels" / "test" / f"img{i}.txt").write_text("\n".join(rows) + "\n")
        labels.append((boxes, classes))
    (root / "dataset.yaml").write_text(f"path: {root}\nnames: {NAMES}\ntest: images/test\n")
    return root / "dataset.yaml", labels


class JitteredLabels:
    """Predicts each image's labels, jittered, plus a false alarm (images arrive in sorted order)."""

    class_names = NAMES

    def __init__(self, labels, thresholds=None):
        self.labels = list(labels)
        self.rng = np.random.default_rng(0)
        self.batch_sizes: list[int] = []
        if thresholds is not None:
            self.thresholds = thresholds

    def predict(self, images):
        self.batch_sizes.append(len(images))
        out = []
        for im in images:
            boxes, classes = self.labels.pop(0)
            boxes = boxes + self.rng.normal(0, 2, boxes.shape)
            out.append(Detections(np.r_[boxes, [[5, 5, 40, 40]]], [0.9, 0.6, 0.7], np.r_[classes, [0]],
                                  im.shape[:2]))
        return out


def test_each_image_is_decoded_once_and_batched(tmp_path, monkeypatch):
    import cv2

    from marauder.evaluate import evaluate_model

    yaml_path, labels = build_tiny_set(tmp_path, n_images=6)
    reads = []
    real_imread = cv2.imread
    monkeypatch.setattr(cv2, "imread", lambda path, *a: reads.append(Path(path).name) or real_imread(path, *a))
    predictor = JitteredLabels(labels)
    report = evaluate_model(predictor, yaml_path, batch=4, bootstrap=20, critical_species=["lionfish"])
    assert sorted(reads) == [f"img{i}.jpg" for i in range(6)]  # once each, figures included
    assert predictor.batch_sizes == [4, 2]
    assert report.summary["num_images"] == 6
    assert all(c["recall"] == 1.0 for c in report.summary["per_class"].values())  # every object found...
    assert report.summary["mAP50"] < 1.0  # ...but lionfish alarms (0.7) outrank some hits (0.6)
    report.ensure_figures()
    assert len(reads) == 6


@pytest.mark.parametrize("thresholds,expected_fp", [
    (None, 6),  # operating_conf 0.25: the 0.7 false alarm on every image counts
    (np.array([0.8, 0.25, 0.25]), 0),  # the predictor's own per-class thresholds (array by class id)
    ({"lionfish": 0.8}, 0),  # or by name
])
def test_per_class_thresholds_from_the_predictor(tmp_path, thresholds, expected_fp):
    from marauder.evaluate import evaluate_model

    yaml_path, labels = build_tiny_set(tmp_path)
    report = evaluate_model(JitteredLabels(labels, thresholds), yaml_path, bootstrap=0, worst_examples=0)
    lionfish = report.summary["per_class"]["lionfish"]
    assert lionfish["fp"] == expected_fp
    assert lionfish["threshold"] == (0.25 if thresholds is None else 0.8)
    # lionfish labels scored 0.9 or 0.6: with a 0.8 threshold those at 0.6 are missed
    assert lionfish["recall"] == pytest.approx(1.0 if thresholds is None else 0.5)
