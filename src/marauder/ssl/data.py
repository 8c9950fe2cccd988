"""The unlabelled image pool: every image in the workspace's unlabelled folders, read lazily.

Images are decoded one at a time in the loader workers (never all held in memory). A file that
cannot be decoded is skipped and reported, not fatal: real footage dumps contain truncated frames.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from ..errors import DataError
from ..fsio import list_images


def read_rgb(path: Path) -> Image.Image | None:
    """Decode with OpenCV (not PIL.Image.open, which Ultralytics patches to install plugins on failure)."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError:
        return None
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        return None
    return Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def collect_images(folders: Sequence[Path], max_images: int | None = None, seed: int = 0,
                   exclude_sha256: set[str] | None = None) -> list[Path]:
    """All images under the folders (recursively, de-duplicated); a seeded sample when capped. Images
    whose bytes hash to one of `exclude_sha256` (the test split) are left out."""
    from ..fsio import sha256_file

    seen: dict[Path, None] = {}
    for folder in folders:
        for p in list_images(folder, recursive=True):
            seen.setdefault(p.resolve(), None)
    paths = [p for p in seen if not exclude_sha256 or sha256_file(p) not in exclude_sha256]
    if not paths:
        listed = ", ".join(str(f) for f in folders) or "(none configured)"
        raise DataError(f"no unlabelled images found in {listed}: add images there or list more folders "
                        "in data.extra_unlabelled_dirs")
    if max_images is not None and len(paths) > max_images:
        paths = sorted(random.Random(seed).sample(paths, max_images))
    return paths


class UnlabelledImages(torch.utils.data.Dataset):
    """Returns (views, index); views is None when the file is unreadable."""

    def __init__(self, paths: Sequence[Path], transform: Callable):
        self.paths, self.transform = list(paths), transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        image = read_rgb(self.paths[index])
        if image is None:
            return None, index
        return self.transform(image), index


def collate_views(batch):
    """Stack the two views of readable images; report the indices of unreadable ones."""
    good = [views for views, _ in batch if views is not None]
    bad = [index for views, index in batch if views is None]
    if not good:
        return None, None, bad
    v0 = torch.stack([views[0] for views in good])
    v1 = torch.stack([views[1] for views in good])
    return v0, v1, bad
