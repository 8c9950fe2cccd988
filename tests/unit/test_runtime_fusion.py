"""The numpy fusion against ensemble-boxes (WBF), and `fuse` (pixels, Detections) against the array-level code."""

from __future__ import annotations

import numpy as np
import pytest

from marauder.runtime.fusion import fuse, nms_fusion, weighted_boxes_fusion


def random_sources(seed: int, n_sources: int = 3, n_boxes: int = 12, n_classes: int = 3):
    """Overlapping boxes: jittered copies of a few objects, so clusters actually form."""
    rng = np.random.default_rng(seed)
    objects = rng.uniform(0.05, 0.6, (5, 2))
    sizes = rng.uniform(0.05, 0.3, (5, 2))
    boxes, scores, labels = [], [], []
    for _ in range(n_sources):
        pick = rng.integers(0, 5, n_boxes)
        xy = objects[pick] + rng.normal(0, 0.02, (n_boxes, 2))
        wh = sizes[pick] * rng.uniform(0.8, 1.2, (n_boxes, 2))
        b = np.clip(np.concatenate([xy, xy + wh], 1), 0, 1)
        boxes.append(b)
        scores.append(rng.uniform(0, 1, n_boxes))
        labels.append(rng.integers(0, n_classes, n_boxes).astype(float))
    return boxes, scores, labels


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("conf_type", ["avg", "max", "box_and_model_avg", "absent_model_aware_avg"])
def test_wbf_equals_ensemble_boxes(seed, conf_type):
    from ensemble_boxes import weighted_boxes_fusion as reference

    boxes, scores, labels = random_sources(seed)
    weights = [2.0, 1.0, 1.0] if seed % 2 else None
    ours = weighted_boxes_fusion(boxes, scores, labels, weights, iou_thr=0.55, skip_box_thr=0.1,
                                 conf_type=conf_type)
    theirs = reference(boxes, scores, labels, weights=weights, iou_thr=0.55, skip_box_thr=0.1, conf_type=conf_type)
    assert len(ours[0]) == len(theirs[0]) > 0
    for a, b in zip(ours, theirs):
        assert np.allclose(a, b, atol=1e-6)


def test_wbf_of_nothing_is_empty():
    out = weighted_boxes_fusion([np.zeros((0, 4))], [np.zeros(0)], [np.zeros(0)])
    assert [len(x) for x in out] == [0, 0, 0]


@pytest.mark.parametrize("method", ["wbf", "nms", "soft_nms"])
@pytest.mark.parametrize("weights", [None, [1.0, 0.5, 2.0]])
def test_fuse_in_pixels_is_the_array_fusion_of_normalised_boxes(method, weights):
    """`fuse` on pixel Detections = the array-level fusion of the boxes divided by the image size,
    mapped back to pixels: the normalisation and its inverse add nothing of their own."""
    from marauder.types import Detections

    h, w = 200, 300
    boxes, scores, labels = random_sources(7)
    scale = np.array([w, h, w, h])
    dets = [Detections(b * scale, s, lab.astype(int), (h, w)) for b, s, lab in zip(boxes, scores, labels)]
    fused = fuse(dets, method=method, iou_threshold=0.5, skip_box_threshold=0.05, weights=weights)
    norm = [np.clip(d.xyxy.astype(np.float64) / scale, 0, 1) for d in dets]
    keep = [d.scores >= 0.05 for d in dets]
    arrays = ([n[k] for n, k in zip(norm, keep)], [d.scores[k].astype(np.float64) for d, k in zip(dets, keep)],
              [d.class_ids[k].astype(float) for d, k in zip(dets, keep)])
    if method == "wbf":
        b, s, lab = weighted_boxes_fusion(*arrays, weights, iou_thr=0.5, skip_box_thr=0.05)
    else:
        b, s, lab = nms_fusion(*arrays, weights, iou_thr=0.5, soft=method == "soft_nms", skip_box_thr=0.05)
    expected = Detections(np.asarray(b).reshape(-1, 4) * scale, s, np.rint(lab).astype(int), (h, w))
    order = np.lexsort((expected.xyxy[:, 1], expected.xyxy[:, 0], expected.class_ids, -expected.scores))
    expected = expected[order]
    assert len(fused) == len(expected) > 0
    assert np.allclose(fused.xyxy, expected.xyxy, atol=1e-3)
    assert np.allclose(fused.scores, expected.scores, atol=1e-6)
    assert np.array_equal(fused.class_ids, expected.class_ids)


@pytest.mark.parametrize("conf_type", ["avg", "max", "box_and_model_avg", "absent_model_aware_avg"])
def test_wbf_is_bit_exact_with_ensemble_boxes_at_ensemble_x_tta_scale(conf_type):
    """3 members x 4 views of crowded scenes at conf 0.001: clusters of many boxes, where a running sum
    that drifted from ensemble-boxes' recomputation would show."""
    from ensemble_boxes import weighted_boxes_fusion as reference

    boxes, scores, labels = random_sources(7, n_sources=12, n_boxes=150, n_classes=4)
    weights = [2.0, 1.0, 1.0] * 4
    ours = weighted_boxes_fusion(boxes, scores, labels, weights, iou_thr=0.55, skip_box_thr=0.001, conf_type=conf_type)
    theirs = reference(boxes, scores, labels, weights=weights, iou_thr=0.55, skip_box_thr=0.001, conf_type=conf_type)
    assert len(ours[0]) == len(theirs[0]) and len(ours[0]) < 150 * 12 / 3  # it did cluster
    for a, b in zip(ours, theirs):
        assert np.array_equal(a, b)
