"""Fusion of several sources' detections: literal boxes in, literal boxes and scores out."""

from __future__ import annotations

import math

import numpy as np
import pytest

from marauder.runtime.fusion import fuse, fuse_batch
from marauder.types import Detections

SIZE = (100, 100)  # (height, width)


def dets(*rows, size=SIZE) -> Detections:
    """rows of (x1, y1, x2, y2, score, class_id) in pixels."""
    if not rows:
        return Detections.empty(size)
    a = np.array(rows, dtype=np.float64)
    return Detections(a[:, :4], a[:, 4], a[:, 5].astype(int), size)


def as_rows(d: Detections) -> list[tuple]:
    return [(*np.round(b, 3).tolist(), round(float(s), 4), int(c))
            for b, s, c in zip(d.xyxy, d.scores, d.class_ids)]


def assert_rows(d: Detections, expected: list[tuple]) -> None:
    got = as_rows(d)
    assert len(got) == len(expected), got
    assert np.allclose(np.array(got, dtype=float).reshape(-1, 6), np.array(expected, dtype=float).reshape(-1, 6),
                       atol=1e-3), got


WBF_CASES = [
    pytest.param(
        [dets((10, 10, 50, 50, 0.9, 0)), dets((10, 10, 50, 50, 0.7, 0))], {},
        [(10, 10, 50, 50, 0.8, 0)], id="identical boxes average their scores",
    ),
    pytest.param(
        # IoU 0.6 > 0.55: one box, coordinates weighted by score (0.8*0 + 0.4*10) / 1.2 = 3.333
        [dets((0, 0, 40, 40, 0.8, 0)), dets((10, 0, 50, 40, 0.4, 0))], {},
        [(3.333, 0, 43.333, 40, 0.6, 0)], id="overlapping boxes merge score-weighted",
    ),
    pytest.param(
        [dets((0, 0, 40, 40, 0.8, 0)), dets((10, 0, 50, 40, 0.4, 0))], {"iou_threshold": 0.7},
        [(0, 0, 40, 40, 0.4, 0), (10, 0, 50, 40, 0.2, 0)], id="below the IoU threshold both stay, halved",
    ),
    pytest.param(
        [dets((10, 10, 50, 50, 0.9, 0)), dets((10, 10, 50, 50, 0.9, 1))], {},
        [(10, 10, 50, 50, 0.45, 0), (10, 10, 50, 50, 0.45, 1)], id="different classes never merge",
    ),
    pytest.param(
        [dets((10, 10, 50, 50, 0.9, 0)), dets(), dets()], {},
        [(10, 10, 50, 50, 0.3, 0)], id="one of three models: a third of the score",
    ),
    pytest.param(
        [dets((10, 10, 50, 50, 0.9, 0)), dets(), dets()], {"conf_type": "max"},
        [(10, 10, 50, 50, 0.9, 0)], id="conf_type max keeps the best score",
    ),
    pytest.param(
        [dets((10, 10, 50, 50, 0.9, 0)), dets((10, 10, 50, 50, 0.6, 0))], {"weights": [2, 1]},
        [(10, 10, 50, 50, 0.8, 0)], id="weights: (2*0.9 + 1*0.6) / 3",
    ),
    pytest.param(
        [dets((0, 0, 40, 40, 0.8, 0)), dets((10, 0, 50, 40, 0.4, 0))], {"conf_thresholds": [0.5, 0.5]},
        [(0, 0, 40, 40, 0.4, 0)], id="per-source thresholds apply before fusion",
    ),
    pytest.param(
        [dets((0, 0, 40, 40, 0.8, 0)), dets((10, 0, 50, 40, 0.4, 0))], {"conf_thresholds": [0.9, 0.3]},
        [(10, 0, 50, 40, 0.2, 0)], id="each source has its own threshold",
    ),
    pytest.param(
        [dets((0, 0, 40, 40, 0.8, 0), (60, 60, 90, 90, 0.2, 1)), dets()],
        {"conf_thresholds": [np.array([0.5, 0.1]), None]},
        [(0, 0, 40, 40, 0.4, 0), (60, 60, 90, 90, 0.1, 1)], id="per-class threshold arrays",
    ),
    pytest.param(
        [dets((10, 10, 50, 50, 0.0005, 0)), dets((10, 10, 50, 50, 0.6, 0))], {},
        [(10, 10, 50, 50, 0.3, 0)], id="skip_box_threshold drops near-zero boxes",
    ),
    pytest.param(
        [dets((20, 10, 60, 50, 0.5, 0), size=(100, 200)), dets((20, 10, 60, 50, 0.5, 0), size=(100, 200))],
        {}, [(20, 10, 60, 50, 0.5, 0)], id="non-square image maps back to the same pixels",
    ),
    pytest.param(
        [dets((-10, -5, 50, 120, 0.6, 0)), dets((0, 0, 50, 100, 0.6, 0))], {},
        [(0, 0, 50, 100, 0.6, 0)], id="boxes overhanging the image are clipped to it",
    ),
]


@pytest.mark.parametrize("sources, options, expected", WBF_CASES)
def test_wbf(sources, options, expected):
    fused = fuse(sources, method="wbf", **options)
    assert_rows(fused, expected)
    assert fused.image_size == sources[0].image_size


NMS_CASES = [
    pytest.param(
        "nms", [dets((0, 0, 40, 40, 0.8, 0)), dets((10, 0, 50, 40, 0.4, 0))], {},
        [(0, 0, 40, 40, 0.8, 0)], id="nms keeps the best of an overlapping pair, score unchanged",
    ),
    pytest.param(
        "nms", [dets((0, 0, 40, 40, 0.8, 0)), dets((10, 0, 50, 40, 0.4, 0))], {"iou_threshold": 0.7},
        [(0, 0, 40, 40, 0.8, 0), (10, 0, 50, 40, 0.4, 0)], id="nms keeps both under the IoU threshold",
    ),
    pytest.param(
        "nms", [dets((0, 0, 40, 40, 0.8, 0)), dets((10, 0, 50, 40, 0.4, 1))], {},
        [(0, 0, 40, 40, 0.8, 0), (10, 0, 50, 40, 0.4, 1)], id="nms is per class",
    ),
    pytest.param(
        "nms", [dets((0, 0, 40, 40, 0.8, 0)), dets((10, 0, 50, 40, 0.6, 0))], {"weights": [0.5, 1.0]},
        [(10, 0, 50, 40, 0.6, 0)], id="nms weights scale scores by weight/max(weights)",
    ),
    pytest.param(
        # Gaussian decay of the second box: 0.4 * exp(-0.6^2 / 0.5)
        "soft_nms", [dets((0, 0, 40, 40, 0.8, 0)), dets((10, 0, 50, 40, 0.4, 0))], {},
        [(0, 0, 40, 40, 0.8, 0), (10, 0, 50, 40, round(0.4 * math.exp(-0.72), 4), 0)],
        id="soft-nms decays the overlapping box's score",
    ),
    pytest.param(
        "soft_nms", [dets((0, 0, 40, 40, 0.8, 0)), dets((0, 0, 40, 40, 0.001, 0))], {},
        [(0, 0, 40, 40, 0.8, 0)], id="soft-nms drops boxes decayed below skip_box_threshold",
    ),
]


@pytest.mark.parametrize("method, sources, options, expected", NMS_CASES)
def test_nms_methods(method, sources, options, expected):
    assert_rows(fuse(sources, method=method, **options), expected)


@pytest.mark.parametrize("method", ["wbf", "nms", "soft_nms"])
def test_empty_sources_give_empty_detections_of_that_image(method):
    fused = fuse([dets(), dets()], method=method)
    assert len(fused) == 0 and fused.image_size == SIZE


@pytest.mark.parametrize("method", ["wbf", "nms", "soft_nms"])
def test_output_is_sorted_by_score(method):
    fused = fuse([dets((0, 0, 10, 10, 0.3, 0), (50, 50, 90, 90, 0.9, 1)), dets((20, 20, 30, 30, 0.6, 0))],
                 method=method)
    assert list(fused.scores) == sorted(fused.scores, reverse=True)
    assert fused.xyxy.dtype == np.float32 and fused.class_ids.dtype == np.int64


@pytest.mark.parametrize(
    "sources, options, message",
    [
        ([], {}, "at least one source"),
        ([dets((0, 0, 1, 1, 0.5, 0))], {"method": "nmw"}, "unknown method"),
        ([dets((0, 0, 1, 1, 0.5, 0))], {"conf_type": "median"}, "unknown conf_type"),
        ([dets(), dets()], {"weights": [1.0]}, "1 weights for 2 sources"),
        ([dets(), dets()], {"conf_thresholds": [0.1]}, "1 confidence thresholds for 2 sources"),
        ([dets(size=(10, 10)), dets(size=(20, 20))], {}, "different image sizes"),
        ([dets((0, 0, 1, 1, 0.5, 0), size=(0, 0))], {}, "image size unknown"),
    ],
)
def test_bad_input_is_a_clear_error(sources, options, message):
    with pytest.raises(ValueError, match=message):
        fuse(sources, **options)


def test_image_size_argument_overrides_unknown_sizes():
    fused = fuse([dets((10, 10, 50, 50, 0.9, 0), size=(0, 0))], image_size=(100, 100))
    assert_rows(fused, [(10, 10, 50, 50, 0.9, 0)])
    assert tuple(fused.image_size) == (100, 100)


def test_fuse_batch_fuses_image_by_image():
    a = [dets((10, 10, 50, 50, 0.9, 0)), dets()]
    b = [dets((10, 10, 50, 50, 0.7, 0)), dets((5, 5, 20, 20, 0.5, 1))]
    out = fuse_batch([a, b], method="wbf")
    assert_rows(out[0], [(10, 10, 50, 50, 0.8, 0)])
    assert_rows(out[1], [(5, 5, 20, 20, 0.25, 1)])
    with pytest.raises(ValueError, match="different numbers of images"):
        fuse_batch([a, b[:1]])
