"""The runtime's letterbox, box scaling and NMS against Ultralytics' own functions, case by case."""

from __future__ import annotations

import numpy as np
import pytest

from marauder.runtime.postprocess import decode, nms
from marauder.runtime.preprocess import letterbox, scale_boxes, to_blob


@pytest.mark.parametrize("shape,size", [
    ((480, 640), (640, 640)), ((1024, 768), (640, 640)), ((202, 360), (64, 64)), ((7, 300), (320, 320)),
    ((641, 333), (256, 256)), ((1, 1000), (64, 64)), ((640, 640), (640, 640)),
])
def test_letterbox_and_scale_match_ultralytics(shape, size):
    import torch
    from ultralytics.data.augment import LetterBox
    from ultralytics.utils.ops import scale_boxes as u_scale_boxes

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (*shape, 3), dtype=np.uint8)
    ours, box = letterbox(image, size)
    theirs = LetterBox(size, auto=False, stride=32)(image=image)
    assert ours.shape == theirs.shape
    assert np.array_equal(ours, theirs)

    xyxy = rng.uniform(0, size[0], (20, 4)).astype(np.float32)
    xyxy[:, 2:] = np.maximum(xyxy[:, 2:], xyxy[:, :2] + 1)
    expected = u_scale_boxes(size, torch.from_numpy(xyxy.copy()), shape).numpy()
    assert np.allclose(scale_boxes(xyxy, box), expected, atol=1e-3)


def test_to_blob_is_rgb_chw_unit_range():
    image = np.zeros((4, 6, 3), np.uint8)
    image[..., 0] = 255  # blue in BGR
    blob = to_blob([image])
    assert blob.shape == (1, 3, 4, 6) and blob.dtype == np.float32
    assert blob[0, 2].max() == 1.0 and blob[0, 0].max() == 0.0  # blue ends up last (RGB)


@pytest.mark.parametrize("seed,nc,conf,iou", [(0, 3, 0.25, 0.7), (1, 80, 0.001, 0.6), (2, 1, 0.5, 0.45),
                                              (3, 5, 0.0, 0.5)])
def test_decode_matches_ultralytics_nms(seed, nc, conf, iou):
    import torch
    from ultralytics.utils.nms import non_max_suppression

    rng = np.random.default_rng(seed)
    anchors = 400
    pred = np.zeros((2, 4 + nc, anchors), np.float32)
    pred[:, 0:2] = rng.uniform(0, 320, (2, 2, anchors))
    pred[:, 2:4] = rng.uniform(4, 80, (2, 2, anchors))
    pred[:, 4:] = rng.uniform(0, 1, (2, nc, anchors)) ** 3
    ours = decode(pred, conf, iou, max_det=300)
    theirs = non_max_suppression(torch.from_numpy(pred), conf, iou, max_det=300)
    for a, b in zip(ours, theirs):
        b = b.numpy()
        assert a.shape == b.shape
        assert np.allclose(a, b, atol=1e-4)


def test_nms_suppresses_above_threshold_only():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10.5], [20, 20, 30, 30]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    assert nms(boxes, scores, 0.5).tolist() == [0, 2]
    assert nms(boxes, scores, 0.99).tolist() == [0, 1, 2]


def test_end_to_end_head_needs_no_nms():
    rows = np.array([[[1, 2, 3, 4, 0.9, 1], [5, 6, 7, 8, 0.1, 0]]], np.float32)
    out = decode(rows, conf=0.25, iou=0.7)
    assert out[0].tolist() == [[1, 2, 3, 4, pytest.approx(0.9), 1]]


@pytest.mark.parametrize("seed,n", [(0, 1), (1, 40), (2, 400)])
def test_opencv_nms_equals_numpy_reference(seed, n):
    from marauder.runtime.postprocess import nms_numpy

    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 300, (n, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 90, (n, 2))], 1).astype(np.float32)
    scores = rng.uniform(0.01, 1, n).astype(np.float32)
    assert np.array_equal(nms(boxes, scores, 0.5), nms_numpy(boxes, scores, 0.5))
