"""Fingerprints decide whether a stage is up to date: its config sections plus its input files.

Files are identified by (path, size, mtime_ns): cheap on large image folders and
changed by any rewrite. Config sections are hashed from their resolved JSON form. Derived files
that training rewrites on its own (Ultralytics' labels/*.cache) and hidden files don't count.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path


def _walk(path: Path) -> Iterable[tuple[str, int, int]]:
    if path.is_file():
        st = path.stat()
        yield str(path), st.st_size, st.st_mtime_ns
    elif path.is_dir():
        for p in sorted(path.rglob("*")):
            if p.is_file() and not p.name.startswith(".") and p.suffix != ".cache":
                st = p.stat()
                yield str(p), st.st_size, st.st_mtime_ns


def fingerprint(config_sections: dict, inputs: Iterable[Path]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(config_sections, sort_keys=True, default=str).encode())
    for path in inputs:
        h.update(f"\n#{path}".encode())
        for name, size, mtime in _walk(Path(path)):
            h.update(f"{name}\0{size}\0{mtime}\n".encode())
    return h.hexdigest()
