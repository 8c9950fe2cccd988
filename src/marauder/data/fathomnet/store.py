"""data/fathomnet/: images, YOLO labels and metadata.json, kept consistent across kills.

Each finished image is appended to a journal (one JSON line, flushed) before anything else
happens, and metadata.json is rewritten atomically every few seconds and at the end; a rerun
merges the journal, so a kill loses nothing already downloaded. The journal is removed once
metadata.json holds everything. Images and labels are written temp-file-then-rename.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
import time
from pathlib import Path

from ...errors import MarauderError
from ...fsio import atomic_write_json
from .records import apply_classes, label_text

JOURNAL_NAME = ".metadata.journal.jsonl"
_UMASK = os.umask(0)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK  # mkstemp makes 0600 files; finished files get the usual permissions
TMP_SUFFIX = ".part"


class OutputNotWritable(MarauderError):
    pass


class FathomNetStore:
    def __init__(self, images: Path, labels: Path, metadata: Path, flush_seconds: float = 2.0):
        self.images, self.labels, self.metadata = Path(images), Path(labels), Path(metadata)
        self.journal = self.metadata.with_name(JOURNAL_NAME)
        self.flush_seconds = flush_seconds
        self.entries: dict[str, dict] = {}  # file name -> entry
        self.added: set[str] = set()  # labelled in this run, with this run's mapping
        self.header: dict = {}
        self._lock = threading.Lock()
        self._journal_fh = None
        self._last_flush = 0.0

    # -- set-up ----------------------------------------------------------------------------
    def prepare(self) -> None:
        """Create the folders and prove they are writable before any download starts."""
        for folder in (self.images, self.labels, self.metadata.parent):
            try:
                folder.mkdir(parents=True, exist_ok=True)
                fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-probe.")
                os.close(fd)
                os.unlink(probe)
            except OSError as exc:
                raise OutputNotWritable(f"output folder {folder} is not writable ({exc.strerror or exc})") from None
        self._remove_stale_temp_files()
        self._load()

    def _remove_stale_temp_files(self) -> None:
        for folder in (self.images, self.labels, self.metadata.parent):
            for p in folder.glob(".*"):
                if p.is_file() and (p.name.endswith(TMP_SUFFIX) or p.name.endswith(".tmp")):
                    with contextlib.suppress(OSError):
                        p.unlink()

    def _load(self) -> None:
        if self.metadata.is_file():
            try:
                data = json.loads(self.metadata.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise MarauderError(f"unreadable metadata ({exc.msg}); move it away to start afresh",
                                    file=str(self.metadata), line=exc.lineno) from None
            self.header = {k: v for k, v in data.items() if k != "images"}
            for e in data.get("images", []):
                self.entries[e["file"]] = e
        if self.journal.is_file():
            for line in self.journal.read_text(encoding="utf-8").splitlines():
                with contextlib.suppress(json.JSONDecodeError, KeyError, TypeError):
                    e = json.loads(line)  # a kill may have cut the last line: skip it
                    self.entries[e["file"]] = e
        # Only entries whose image is still on disk count as downloaded.
        self.entries = {f: e for f, e in self.entries.items() if (self.images / f).is_file()}

    # -- writing ---------------------------------------------------------------------------
    def temp_path(self, file_name: str) -> Path:
        fd, tmp = tempfile.mkstemp(dir=self.images, prefix=f".{file_name}.", suffix=TMP_SUFFIX)
        os.fchmod(fd, FILE_MODE)
        os.close(fd)
        return Path(tmp)

    def add(self, entry: dict, concept_to_class: dict[str, int], classes: list[str]) -> None:
        """Record a finished image: journal first (survives a kill), then its label file."""
        apply_classes(entry, concept_to_class, classes)
        line = json.dumps(entry, sort_keys=True) + "\n"
        with self._lock:
            if self._journal_fh is None:
                self._journal_fh = open(self.journal, "a", encoding="utf-8")  # noqa: SIM115
            self._journal_fh.write(line)
            self._journal_fh.flush()
            self.entries[entry["file"]] = entry
            self.added.add(entry["file"])
        write_replace(self.labels / label_name(entry["file"]), label_text(entry))
        if time.monotonic() - self._last_flush > self.flush_seconds:
            self.flush()

    def flush(self, final: bool = False) -> None:
        with self._lock:
            self._last_flush = time.monotonic()
            atomic_write_json(self.metadata, self._document())
            if final:
                if self._journal_fh is not None:
                    self._journal_fh.close()
                    self._journal_fh = None
                with contextlib.suppress(FileNotFoundError):
                    self.journal.unlink()

    def _document(self) -> dict:
        return {**self.header, "images": [self.entries[f] for f in sorted(self.entries)]}

    def relabel_all(self, concept_to_class: dict[str, int], classes: list[str]) -> int:
        """Make every label file from earlier runs match the current class mapping; returns how many changed."""
        changed = 0
        for file_name, entry in sorted(self.entries.items()):
            if file_name in self.added:
                continue
            apply_classes(entry, concept_to_class, classes)
            path = self.labels / label_name(file_name)
            text = label_text(entry)
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                write_replace(path, text)
                changed += 1
        return changed


def label_name(image_file: str) -> str:
    return f"{os.path.splitext(image_file)[0]}.txt"


def write_replace(path: Path, text: str) -> None:
    """Temp file + rename, without fsync: a kill never leaves half a file, and thousands of small
    label files are not each forced to disk (metadata.json, written rarely, is)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    os.fchmod(fd, FILE_MODE)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
