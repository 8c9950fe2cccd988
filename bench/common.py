"""Helpers every benchmark uses: machine description and the JSON result format.

Each bench/<name>.py writes bench/out/<name>.json:
  {"name", "description", "machine", "rows": [{"metric", "ours", "peer", "peer_name", "ratio",
   "units", "target", "notes"}]}
bench/run_all.py runs them all and writes bench/results.json plus bench/results.md.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

OUT_DIR = Path(__file__).resolve().parent / "out"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def machine() -> dict:
    import psutil

    return {
        "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1), "python": platform.python_version(),
        "platform": platform.platform(), "date": time.strftime("%Y-%m-%d"),
    }


def row(metric: str, ours, peer=None, peer_name: str | None = None, units: str = "",
        target: str = "", notes: str = "", higher_is_better: bool = True) -> dict:
    ratio = None
    if isinstance(ours, int | float) and isinstance(peer, int | float) and peer:
        ratio = round(ours / peer, 4)
    return {"metric": metric, "ours": ours, "peer": peer, "peer_name": peer_name, "ratio": ratio,
            "units": units, "target": target, "notes": notes, "higher_is_better": higher_is_better}


def write_result(name: str, description: str, rows: list[dict], extra: dict | None = None) -> Path:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"{name}.json"
    payload = {"name": name, "description": description, "machine": machine(), "rows": rows,
               **(extra or {})}
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(json.dumps(payload, indent=2))
    return path


def link_labelled_set(work: Path, root: Path) -> Path:
    """work/all/images/*.jpg as symlinks to a ../shared/data set, with its labels copied into
    work/all/labels/ (where Ultralytics looks for them); returns the images folder."""
    import shutil

    images, labels = work / "all" / "images", work / "all" / "labels"
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    for p in sorted((root / "images").glob("*.jpg")):
        os.symlink(p, images / p.name)
        shutil.copy(root / "labels" / f"{p.stem}.txt", labels / f"{p.stem}.txt")
    return images


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
