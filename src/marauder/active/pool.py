"""Streaming the unlabelled pool: paths are listed up front, pixels are loaded one batch at a time.

A background thread reads and decodes the next batch while the model works on the current one,
so disk and inference overlap. Images are identified by the SHA-256 of their bytes, which is what
the exclusion list (already labelled, already sent) is keyed on: renames and copies don't fool it.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..fsio import list_images, sha256_file
from ..log import get_logger

log = get_logger("active.pool")


@dataclass
class PoolImage:
    path: Path
    source: str  # the configured pool folder it came from
    sha256: str
    image: np.ndarray  # BGR


@dataclass
class PoolStats:
    listed: int = 0
    excluded: int = 0
    duplicates: int = 0
    unreadable: int = 0
    scored: int = 0


def list_pool(folders: Iterable[tuple[str, Path]]) -> list[tuple[str, Path]]:
    """(source, image path) for every image under the folders (recursive, sorted, each file once)."""
    seen: set[Path] = set()
    entries = []
    for source, folder in folders:
        if not Path(folder).is_dir():
            log.warning("pool folder %s does not exist; skipped", folder)
            continue
        for path in list_images(folder, recursive=True):
            real = path.resolve()
            if real not in seen:
                seen.add(real)
                entries.append((source, path))
    return entries


def hashes_of(folders: Iterable[Path]) -> set[str]:
    """SHA-256 of every image under the folders (the labelled data to exclude from the pool)."""
    out: set[str] = set()
    for folder in folders:
        for path in list_images(folder, recursive=True):
            out.add(sha256_file(path))
    return out


def _load(entries: list[tuple[str, Path]], exclude: set[str], seen: set[str],
          stats: PoolStats) -> list[PoolImage]:
    batch = []
    for source, path in entries:
        try:
            data = path.read_bytes()
        except OSError as exc:
            log.warning("cannot read %s (%s); skipped", path, exc)
            stats.unreadable += 1
            continue
        digest = hashlib.sha256(data).hexdigest()
        if digest in exclude:
            stats.excluded += 1
            continue
        if digest in seen:
            stats.duplicates += 1
            continue
        seen.add(digest)
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            log.warning("cannot decode %s; skipped", path)
            stats.unreadable += 1
            continue
        batch.append(PoolImage(path, source, digest, image))
    return batch


def iter_batches(entries: list[tuple[str, Path]], batch_size: int, exclude: set[str],
                 stats: PoolStats) -> Iterator[tuple[int, list[PoolImage]]]:
    """Yield (number of entries consumed, decoded images) per batch; at most two batches in memory."""
    stats.listed = len(entries)
    seen: set[str] = set()
    chunks = [entries[i:i + batch_size] for i in range(0, len(entries), batch_size)]
    ready: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()

    def produce():
        try:
            for chunk in chunks:
                if stop.is_set():
                    return
                ready.put((len(chunk), _load(chunk, exclude, seen, stats)))
            ready.put(None)
        except BaseException as exc:  # hand the error to the consumer instead of dying silently
            ready.put(exc)

    worker = threading.Thread(target=produce, name="pool-loader", daemon=True)
    worker.start()
    try:
        while (item := ready.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on the full queue
            try:
                ready.get(timeout=0.1)
            except queue.Empty:
                pass
