"""The served package: a folder, or the export's .tar.gz unpacked safely into a private temp folder.

Operators name the package (never requests). The archive is extracted with tarfile's `data` filter
(no absolute paths, no `..`, no links out, no devices), then the runtime checks SHA256SUMS as usual.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import MarauderError
from ..runtime.config import CONFIG_NAME


@dataclass
class LoadedPackage:
    pipeline: object  # marauder.runtime.pipeline.EdgePipeline
    folder: Path
    source: Path


PREFIX = "marauder-package-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def clean_leftovers(tmp_root: str | Path | None = None) -> list[Path]:
    """Remove unpacked packages whose server died without its atexit cleanup (kill -9, OOM): each folder is
    named marauder-package-<pid>-..., and a folder whose process is gone is a leftover."""
    removed = []
    for folder in Path(tmp_root or tempfile.gettempdir()).glob(f"{PREFIX}*-*"):
        pid = folder.name[len(PREFIX):].split("-", 1)[0]
        if folder.is_dir() and pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _unpack(archive: Path) -> Path:
    if not hasattr(tarfile, "data_filter"):
        raise MarauderError("safe unpacking needs Python >= 3.10.12 or 3.11.4; unpack the archive and pass "
                            "the folder instead", file=str(archive))
    clean_leftovers()
    dest = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))
    atexit.register(shutil.rmtree, dest, True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise MarauderError(f"cannot unpack the package archive: {exc}", file=str(archive)) from None
    configs = sorted(dest.glob(f"*/{CONFIG_NAME}")) + sorted(dest.glob(CONFIG_NAME))
    if not configs:
        raise MarauderError(f"archive holds no {CONFIG_NAME}: not a deployment package", file=str(archive))
    return configs[0].parent


def resolve_package(source: str | Path) -> Path:
    """The package folder for a folder or .tar.gz path (unpacking the archive)."""
    source = Path(source)
    if source.is_dir():
        return source
    if source.is_file() and (source.name.endswith((".tar.gz", ".tgz", ".tar"))):
        return _unpack(source)
    if source.is_file():
        raise MarauderError("expected a package folder or its .tar.gz", file=str(source))
    raise MarauderError("deployment package not found: run `marauder export --package` first", file=str(source))


def load_package(source: str | Path, *, backend: str = "auto", threads: int | None = None,
                 apply_thresholds: bool = True) -> LoadedPackage:
    """Open the package through the edge runtime (checksums verified); runtime errors become MarauderError."""
    from ..runtime.errors import EdgeError
    from ..runtime.pipeline import EdgePipeline

    folder = resolve_package(source)
    try:
        pipeline = EdgePipeline(folder, backend=backend, apply_thresholds=apply_thresholds, threads=threads)
    except EdgeError as exc:
        raise MarauderError(str(exc)) from None
    return LoadedPackage(pipeline, folder, Path(source))
