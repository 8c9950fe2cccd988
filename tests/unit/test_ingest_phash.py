"""Perceptual hash and file naming used by `marauder ingest`."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from marauder.data.ingest import _flat_name, hamming, phash


def _scene(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.zeros((120, 160, 3), np.uint8)
    for _ in range(6):
        c = tuple(int(v) for v in rng.integers(0, 255, 3))
        cv2.circle(img, tuple(int(v) for v in rng.integers(0, 120, 2)), int(rng.integers(8, 40)), c, -1)
    return img


def test_phash_distances():
    a = _scene(1)
    noisy = np.clip(a.astype(int) + np.random.default_rng(0).integers(-6, 7, a.shape), 0, 255).astype(np.uint8)
    recoded = cv2.imdecode(cv2.imencode(".jpg", a, [cv2.IMWRITE_JPEG_QUALITY, 60])[1], cv2.IMREAD_COLOR)
    assert hamming(phash(a), phash(a)) == 0
    assert hamming(phash(a), phash(noisy)) <= 4
    assert hamming(phash(a), phash(recoded)) <= 4
    assert hamming(phash(a), phash(_scene(2))) >= 16
    assert 0 <= phash(a) < 2**64


@pytest.mark.parametrize("rel, name", [
    ("frame1.jpg", "frame1.jpg"), ("7117/No_Fish/a b.JPG", "7117__No_Fish__a_b.jpg"), ("x/y.png", "x__y.png"),
])
def test_flat_name(rel, name):
    assert _flat_name(Path(rel)) == name
