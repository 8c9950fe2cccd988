"""Keeping the best-scored images while streaming, and picking a diverse subset of them."""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field

import numpy as np

from ..types import Detections


@dataclass
class Candidate:
    path: str
    source: str
    sha256: str
    score: float
    detections: Detections
    embedding: np.ndarray | None = None
    extra: dict = field(default_factory=dict)


class TopCandidates:
    """The `capacity` highest-scoring candidates seen so far: memory stays bounded for any pool size.

    Ties keep the earlier image (pool order is sorted, so results are reproducible).
    """

    def __init__(self, capacity: int):
        self.capacity = int(capacity)
        self._heap: list[tuple[float, int, Candidate]] = []
        self._order = itertools.count()

    def offer(self, candidate: Candidate) -> None:
        # heap key (score, -arrival): the root is the lowest score, latest arrival among equals
        item = (candidate.score, -next(self._order), candidate)
        if len(self._heap) < self.capacity:
            heapq.heappush(self._heap, item)
        elif item[:2] > self._heap[0][:2]:
            heapq.heapreplace(self._heap, item)

    def __len__(self) -> int:
        return len(self._heap)

    def best_first(self) -> list[Candidate]:
        return [c for _, _, c in sorted(self._heap, key=lambda t: (-t[0], -t[1]))]


def k_center_greedy(features: np.ndarray, k: int, first: int = 0) -> list[int]:
    """Indices of k rows chosen so each new one is farthest from those already chosen.

    Rows are centred on the candidates' mean (the component every frame shares says nothing about
    how frames differ; early models have little else) and L2-normalised, so feature scale does not
    dominate. Starts from `first` (the top-scored candidate): the most uncertain image is always in.
    """
    x = np.asarray(features, dtype=np.float64)
    n = len(x)
    if k >= n:
        return list(range(n))
    x = x - x.mean(axis=0, keepdims=True)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    chosen = [first]
    dist = np.sum((x - x[first]) ** 2, axis=1)
    dist[first] = -1.0
    for _ in range(k - 1):
        nxt = int(np.argmax(dist))
        chosen.append(nxt)
        dist = np.minimum(dist, np.sum((x - x[nxt]) ** 2, axis=1))
        dist[chosen] = -1.0
    return chosen


def select(candidates: list[Candidate], k: int, diversity: bool) -> list[Candidate]:
    """Top-k by score, or k-center greedy over the candidates' embeddings when asked (and available)."""
    ranked = sorted(candidates, key=lambda c: -c.score)  # stable: ties keep pool order
    positive = [c for c in ranked if c.score > 0]
    if len(positive) >= k:  # never trade an uncertain image for a diverse but certain one
        ranked = positive
    if not diversity or len(ranked) <= k or any(c.embedding is None for c in ranked):
        return ranked[:k]
    picks = k_center_greedy(np.stack([c.embedding for c in ranked]), k, first=0)
    return sorted((ranked[i] for i in picks), key=lambda c: -c.score)
