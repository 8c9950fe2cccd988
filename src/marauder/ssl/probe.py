"""A measurable proxy for representation quality: k-NN accuracy on labelled crops.

Crops come from YOLO-labelled images (box crops labelled by class) plus background crops that touch
no box (labelled "background"), so even a one-class set (fish) gives a real task: fish vs water.
Accuracy is weighted k-NN on cosine similarity of the frozen backbone's features: val crops against a
bank of train crops (leave-one-out within one pool only when there is no val split).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from ..fsio import list_images
from .augment import eval_transform
from .data import read_rgb

MIN_BOX_PX = 8


def _read_yolo_labels(label_file: Path) -> list[tuple[int, float, float, float, float]]:
    if not label_file.is_file():
        return []
    rows = []
    for line in label_file.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 5:
            try:
                rows.append((int(float(parts[0])), *map(float, parts[1:5])))
            except ValueError:
                continue
    return rows


def _overlaps(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def labelled_crops(sources: Sequence[tuple[Path, Path]], max_crops: int = 512, seed: int = 0
                   ) -> tuple[list[Image.Image], list[int]]:
    """(crops, labels) from (images_dir, labels_dir) pairs; label -1 marks background."""
    rng = random.Random(seed)
    crops: list[Image.Image] = []
    labels: list[int] = []
    images = [(img, lbl_dir / f"{img.stem}.txt") for img_dir, lbl_dir in sources for img in list_images(img_dir)]
    rng.shuffle(images)
    for img_path, lbl_path in images:
        if len(crops) >= max_crops:
            break
        rows = _read_yolo_labels(lbl_path)
        image = read_rgb(img_path)
        if image is None:
            continue
        w, h = image.size
        boxes = []
        for cls, cx, cy, bw, bh in rows:
            box = (int((cx - bw / 2) * w), int((cy - bh / 2) * h), int((cx + bw / 2) * w), int((cy + bh / 2) * h))
            boxes.append(box)
            if box[2] - box[0] >= MIN_BOX_PX and box[3] - box[1] >= MIN_BOX_PX:
                crops.append(image.crop(box))
                labels.append(cls)
        # one background window per image, sized like a typical box, touching no box
        side = max(MIN_BOX_PX * 2, min(w, h) // 4)
        for _ in range(10):
            x0, y0 = rng.randint(0, max(0, w - side)), rng.randint(0, max(0, h - side))
            win = (x0, y0, x0 + side, y0 + side)
            if not any(_overlaps(win, b) for b in boxes):
                crops.append(image.crop(win))
                labels.append(-1)
                break
    return crops[:max_crops], labels[:max_crops]


@torch.no_grad()
def embed(encoder: torch.nn.Module, crops: Sequence[Image.Image], imgsz: int, device: torch.device,
          batch: int = 64) -> torch.Tensor:
    tf = eval_transform(imgsz)
    was_training = encoder.training
    encoder.eval()
    feats = []
    for i in range(0, len(crops), batch):
        x = torch.stack([tf(c) for c in crops[i:i + batch]]).to(device)
        feats.append(encoder(x).float().cpu())
    encoder.train(was_training)
    return F.normalize(torch.cat(feats), dim=1)


def knn_accuracy(features: torch.Tensor, labels: Sequence[int], k: int = 20, temperature: float = 0.07) -> float:
    """Leave-one-out k-NN accuracy with similarity-weighted votes."""
    y = torch.as_tensor(list(labels))
    classes, y_idx = torch.unique(y, return_inverse=True)
    n = len(y)
    k = max(1, min(k, n - 1))
    sim = features @ features.t()
    sim.fill_diagonal_(-float("inf"))
    top_sim, top_idx = sim.topk(k, dim=1)
    weights = (top_sim / temperature).exp()
    votes = torch.zeros(n, len(classes))
    votes.scatter_add_(1, y_idx[top_idx], weights)
    return float((votes.argmax(1) == y_idx).float().mean())


@torch.no_grad()
def knn_transfer_accuracy(bank: torch.Tensor, bank_labels: Sequence[int], queries: torch.Tensor,
                          query_labels: Sequence[int], k: int = 20, temperature: float = 0.07) -> float:
    """k-NN accuracy of `queries` (val crops) against a `bank` (train crops): no crop votes for a
    neighbour from its own split, so adjacent video frames cannot answer for each other."""
    classes = sorted(set(bank_labels) | set(query_labels))
    index = {c: i for i, c in enumerate(classes)}
    yb = torch.tensor([index[c] for c in bank_labels])
    yq = torch.tensor([index[c] for c in query_labels])
    k = max(1, min(k, len(yb)))
    top_sim, top_idx = (queries @ bank.t()).topk(k, dim=1)
    votes = torch.zeros(len(yq), len(classes))
    votes.scatter_add_(1, yb[top_idx], (top_sim / temperature).exp())
    return float((votes.argmax(1) == yq).float().mean())


def has_two_classes(labels: Sequence[int]) -> bool:
    return len(set(labels)) >= 2
