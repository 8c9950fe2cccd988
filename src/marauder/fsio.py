"""Atomic file writes: a reader (or a killed run) never sees a half-written file or folder."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
# our in-progress names: ".<name>.<unique>.tmp" (a write), ".<name>.old" (a folder being swapped out),
# ".<name>.<random>.part" (a `sync pull` download): never data, never synced, removed (or restored) at start
LEFTOVER_SUFFIXES = (".tmp", ".old", ".part")
KILL_HOOK_ENV = "MARAUDER_KILL_AFTER_RENAMES"  # tests: SIGKILL this process after its N-th rename
_renames = 0


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once at import: os.umask() is process-wide, so toggling it later would race with threads.
_UMASK = _read_umask()
FILE_MODE = 0o666 & ~_UMASK  # what a plain open() would give; mkstemp makes 0600


def rename(src: str | Path, dst: str | Path) -> None:
    """os.replace, and every write point the crash tests can kill at (KILL_HOOK_ENV)."""
    global _renames
    os.replace(src, dst)
    _renames += 1
    if (limit := os.environ.get(KILL_HOOK_ENV)) and _renames >= int(limit):
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def is_leftover(name: str) -> bool:
    return name.startswith(".") and name.endswith(LEFTOVER_SUFFIXES)


def clean_leftovers(root: str | Path) -> int:
    """Remove what killed writes left under `root`; a swapped-out `.<name>.old` folder whose `<name>` is
    missing (killed between the two renames of a swap) is put back instead. Returns how many."""
    root = Path(root)
    if not root.is_dir():
        return 0
    found = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            if not is_leftover(name):
                continue
            path = Path(dirpath) / name
            found += 1
            original = path.with_name(name[1:-len(".old")]) if name.endswith(".old") else None
            if original is not None and not original.exists():
                os.replace(path, original)
            elif path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        dirnames[:] = [d for d in dirnames if not is_leftover(d)]
    return found


_temp_numbers = itertools.count()


def create_temp_sibling(path: str | Path) -> tuple[int, str]:
    """A new file `.<name>.<pid>-<n>.tmp` beside `path`, open for writing, with the mode a plain open()
    gives: one syscall where mkstemp + fchmod take three (a download writes two files per image)."""
    path = os.fspath(path)
    head, name = os.path.split(path)
    while True:
        tmp = os.path.join(head, f".{name}.{os.getpid()}-{next(_temp_numbers)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666), tmp
        except FileExistsError:  # left by an earlier process with the same pid
            continue


def replace_file(path: str | Path, data: bytes | bytearray, *, durable: bool = True) -> None:
    """Write `data` to a temp sibling and rename it over `path`: readers see the old file or the new one.
    `durable` also forces it to disk first; without it a crash of the machine (not of the process) may
    lose the file, which suits many small files that a rerun recreates."""
    fd, tmp = create_temp_sibling(path)
    try:
        try:
            view = memoryview(data)
            while view:  # os.write may write less than asked
                view = view[os.write(fd, view):]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        rename(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_file(path, data)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


@contextlib.contextmanager
def atomic_directory(target: str | Path, *, replace: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it becomes `target` in one rename.

    With `replace=True` an existing `target` is swapped out only after the new one is complete.
    On any error the temporary folder is removed and `target` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    old = target.with_name(f".{target.name}.old")
    if old.is_dir() and not target.exists():  # a swap killed between its renames: the old one is the state
        os.replace(old, target)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    os.chmod(tmp, 0o777 & ~_UMASK)  # mkdtemp makes 0700
    try:
        yield tmp
        if target.exists():
            if not replace:
                raise FileExistsError(f"{target} already exists")
            shutil.rmtree(old, ignore_errors=True)
            rename(target, old)
            rename(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def ensure_writable(folder: str | Path) -> None:
    """Create `folder` and prove a file can be written there (raises OSError otherwise).

    Checked before long work starts, so a read-only output fails at once, not after an hour.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-probe.")
    os.close(fd)
    os.unlink(probe)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def list_images(folder: str | Path, recursive: bool = False) -> list[Path]:
    """Image files in a folder, sorted by name (deterministic everywhere)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in folder.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
