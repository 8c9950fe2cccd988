"""TTA views: box maps agree with the image transforms, and each inverse maps boxes back exactly."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marauder.config.sections.deploy import TTAConfig
from marauder.runtime.tta import (
    View,
    boxes_from_view,
    boxes_to_original,
    boxes_to_view,
    predict_views,
    transform_image,
    view_input,
    views_from_config,
)
from marauder.types import Detections

VIEWS = [
    View(),
    View(hflip=True),
    View(vflip=True),
    View(rotation=90),
    View(rotation=180),
    View(rotation=270),
    View(hflip=True, vflip=True, rotation=90),
    View(scale=0.5),
    View(scale=1.37),
    View(rotation=270, scale=0.83),
]


@st.composite
def image_and_boxes(draw):
    h = draw(st.integers(8, 2000))
    w = draw(st.integers(8, 2000))
    n = draw(st.integers(0, 6))
    xs = draw(
        st.lists(
            st.tuples(st.floats(0, w, allow_nan=False), st.floats(0, w, allow_nan=False)),
            min_size=n,
            max_size=n,
        )
    )
    ys = draw(
        st.lists(
            st.tuples(st.floats(0, h, allow_nan=False), st.floats(0, h, allow_nan=False)),
            min_size=n,
            max_size=n,
        )
    )
    boxes = np.array([[min(a), min(b), max(a), max(b)] for a, b in zip(xs, ys)], dtype=np.float64).reshape(
        -1, 4
    )
    return (h, w), boxes


@pytest.mark.parametrize("view", VIEWS, ids=lambda v: v.name)
@settings(max_examples=60, deadline=None)
@given(data=image_and_boxes())
def test_inverse_maps_boxes_back(view, data):
    size, boxes = data
    there = boxes_to_view(boxes, view, size)
    back = boxes_from_view(there, view, size)
    np.testing.assert_allclose(back, boxes, rtol=0, atol=1e-9 * max(size))
    # mapped boxes stay well-formed and inside the view's image
    oh, ow = view.output_size(size)
    assert np.all(there[:, 2] >= there[:, 0] - 1e-9) and np.all(there[:, 3] >= there[:, 1] - 1e-9)
    assert (
        np.all(there >= -1e-9)
        and np.all(there[:, [0, 2]] <= ow + 1e-6)
        and np.all(there[:, [1, 3]] <= oh + 1e-6)
    )


@pytest.mark.parametrize("view", [v for v in VIEWS if v.scale == 1.0], ids=lambda v: v.name)
@settings(max_examples=40, deadline=None)
@given(h=st.integers(2, 40), w=st.integers(2, 40), data=st.data())
def test_integer_boxes_round_trip_bit_exact(view, h, w, data):
    x1 = data.draw(st.integers(0, w - 1))
    y1 = data.draw(st.integers(0, h - 1))
    box = np.array([[x1, y1, data.draw(st.integers(x1 + 1, w)), data.draw(st.integers(y1 + 1, h))]], float)
    assert np.array_equal(boxes_from_view(boxes_to_view(box, view, (h, w)), view, (h, w)), box)


@pytest.mark.parametrize("view", [v for v in VIEWS if v.scale == 1.0], ids=lambda v: v.name)
@settings(max_examples=40, deadline=None)
@given(h=st.integers(2, 30), w=st.integers(2, 30), data=st.data())
def test_box_map_matches_the_image_transform(view, h, w, data):
    """Paint a box in an image, transform the image: the painted pixels are where the box map says."""
    x1 = data.draw(st.integers(0, w - 1))
    y1 = data.draw(st.integers(0, h - 1))
    x2, y2 = data.draw(st.integers(x1 + 1, w)), data.draw(st.integers(y1 + 1, h))
    image = np.zeros((h, w, 3), np.uint8)
    image[y1:y2, x1:x2] = 255
    out = transform_image(image, view)
    assert out.shape[:2] == view.output_size((h, w))
    rows, cols = np.nonzero(out[..., 0])
    painted = [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
    np.testing.assert_array_equal(boxes_to_view([[x1, y1, x2, y2]], view, (h, w))[0], painted)


def _bright_box(image, level=150):
    rows, cols = np.nonzero(image[..., 0] > level)
    return [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]


def test_a_scale_view_changes_what_the_model_sees():
    """The defect: a rescaled image letterboxed back to the model input was the identity input again."""
    from marauder.runtime.preprocess import letterbox

    image = np.zeros((100, 160, 3), np.uint8)
    image[20:60, 40:120] = 255
    identity, _ = letterbox(image, (64, 64))
    for scale in (0.5, 0.75):
        seen = view_input(image, View(scale=scale), (64, 64)).image
        assert seen.shape == identity.shape  # a small view still fits a fixed-size input
        assert np.abs(seen.astype(int) - identity).mean() > 10  # ... but the model sees something else
        x1, y1, x2, y2 = _bright_box(seen)
        ix1, iy1, ix2, iy2 = _bright_box(identity)
        assert (x2 - x1) == pytest.approx(scale * (ix2 - ix1), abs=1)


@pytest.mark.parametrize(
    ("view", "run_hw"),
    [(View(scale=0.5), (64, 64)), (View(scale=0.83), (64, 64)), (View(scale=1.37), (96, 96)),
     (View(rotation=270, scale=0.83), (64, 64)), (View(hflip=True, scale=1.25), (96, 96))],
    ids=lambda x: getattr(x, "name", str(x)),
)
@pytest.mark.parametrize("size", [(100, 160), (120, 37), (64, 64)])
def test_scale_views_map_boxes_back_from_the_model_input(view, run_hw, size):
    """Paint a box, build the view's model input, find the box there, map it back: the painted box."""
    h, w = size
    box = [w // 5, h // 4, w // 5 + w // 2, h // 4 + h // 2]
    image = np.zeros((h, w, 3), np.uint8)
    image[box[1]:box[3], box[0]:box[2]] = 255
    vin = view_input(image, view, (64, 64), stride=32)
    assert vin.run_hw == run_hw and vin.image.shape[:2] == run_hw
    back = boxes_to_original([_bright_box(vin.image)], view, size, vin.placed)[0]
    tolerance = 1.5 / min(vin.placed.gain_x, vin.placed.gain_y)  # one model-input pixel, in image pixels
    np.testing.assert_allclose(back, box, atol=tolerance)


@pytest.mark.parametrize(
    ("cfg", "names"),
    [
        (TTAConfig(enabled=False, hflip=True), ["identity"]),
        (TTAConfig(hflip=True), ["identity", "hflip"]),
        (
            TTAConfig(hflip=True, vflip=True, rotations=[90, 270], scales=[1.0, 0.75, 1.25]),
            ["identity", "hflip", "vflip", "rot90", "rot270", "scale0.75", "scale1.25"],
        ),
        (TTAConfig(hflip=False, rotations=[180, 180], scales=[1.0]), ["identity", "rot180"]),
    ],
)
def test_views_from_config(cfg, names):
    assert [v.name for v in views_from_config(cfg)] == names


@pytest.mark.parametrize("bad", [dict(rotation=45), dict(scale=0.0), dict(scale=-1.0)])
def test_bad_views_are_rejected(bad):
    with pytest.raises(ValueError):
        View(**bad)


class _BrightBoxPredictor:
    """Finds the bright rectangle in each image it gets; records how it was called."""

    class_names = ["thing"]

    imgsz = 64

    def __init__(self):
        self.calls = []

    def predict(self, images, imgsz=None):
        self.calls.append((len(images), imgsz))
        out = []
        for im in images:
            assert imgsz is None or im.shape[:2] == tuple(imgsz)
            out.append(Detections([_bright_box(im)], [0.9], [0], im.shape[:2]))
        return out


def test_all_views_of_all_images_go_in_one_predict_call_and_map_back():
    images = []
    for h, w, box in [(40, 60, (5, 7, 30, 20)), (50, 50, (10, 0, 50, 25)), (33, 71, (0, 3, 13, 33))]:
        im = np.zeros((h, w, 3), np.uint8)
        x1, y1, x2, y2 = box
        im[y1:y2, x1:x2] = 200
        images.append(im)
    views = [
        View(),
        View(hflip=True),
        View(vflip=True),
        View(rotation=90),
        View(rotation=180),
        View(rotation=270),
    ]
    predictor = _BrightBoxPredictor()
    out = predict_views(predictor, images, views)
    assert predictor.calls == [(len(images) * len(views), None)]
    for im, per_view in zip(images, out):
        rows, cols = np.nonzero(im[..., 0])
        truth = [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
        for dets in per_view:
            assert dets.image_size == im.shape[:2]
            np.testing.assert_array_equal(dets.xyxy[0], truth)


def test_scale_views_run_at_their_input_size_and_map_back():
    images = []
    for h, w, box in [(40, 60, (5, 7, 30, 20)), (130, 90, (10, 0, 50, 25))]:
        im = np.zeros((h, w, 3), np.uint8)
        x1, y1, x2, y2 = box
        im[y1:y2, x1:x2] = 200
        images.append(im)
    views = [View(), View(scale=0.5), View(scale=1.5), View(hflip=True, scale=0.75)]
    predictor = _BrightBoxPredictor()
    out = predict_views(predictor, images, views)
    # the views that fit the model's own 64 px input share one call; the 1.5x view runs at 96 px
    assert sorted(predictor.calls, key=str) == sorted([(6, None), (2, (96, 96))], key=str)
    for im, per_view in zip(images, out):
        truth = np.array(_bright_box(im), float)
        for view, dets in zip(views, per_view):
            gain = 64 * view.scale / max(im.shape[:2])
            np.testing.assert_allclose(dets.xyxy[0], truth, atol=1.5 / gain)
