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
from collections.abc import Iterable
from pathlib import Path

# Benchmarks compare like with like: no hub downloads mid-run (a COCO .pt would change the start).
os.environ.setdefault("YOLO_OFFLINE", "1")

OUT_DIR = Path(__file__).resolve().parent / "out"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def precompile_sources() -> None:
    """Byte-compile our sources before a start-up-sensitive timing. pip writes a .pyc for every module of
    an installed package (the peers'); our editable install gets them on first import, unless
    PYTHONDONTWRITEBYTECODE is set (it is on some CI hosts), when every run would compile from source."""
    import compileall

    compileall.compile_dir(str(Path(__file__).resolve().parents[1] / "src"), quiet=1)


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


def write_result(name: str, description: str, rows: list[dict], extra: dict | None = None,
                 out_dir: Path | None = None) -> Path:
    """out_dir: somewhere other than bench/out/ (e.g. a smoke run that must stay out of results.md)."""
    out_dir = out_dir or OUT_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    payload = {"name": name, "description": description, "machine": machine(), "rows": rows,
               **(extra or {})}
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(json.dumps(payload, indent=2))
    return path


def link_labelled_set(work: Path, root: Path, *, folder: str = "all", names: Iterable[str] | None = None) -> Path:
    """work/<folder>/images/*.jpg as symlinks to a ../shared/data set, with its labels copied into
    work/<folder>/labels/ (where Ultralytics looks for them); returns the images folder.
    `names`: only these image file names (a subset), else every image."""
    import shutil

    images, labels = work / folder / "images", work / folder / "labels"
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    keep = None if names is None else set(names)
    for p in sorted((root / "images").glob("*.jpg")):
        if keep is not None and p.name not in keep:
            continue
        os.symlink(p, images / p.name)
        shutil.copy(root / "labels" / f"{p.stem}.txt", labels / f"{p.stem}.txt")
    return images


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
