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
import threading
import time
from pathlib import Path

from ...errors import MarauderError
from ...fsio import create_temp_sibling, ensure_writable, is_leftover, replace_file
from .records import apply_classes, label_text

JOURNAL_NAME = ".metadata.journal.jsonl"


class OutputNotWritable(MarauderError):
    pass


def compact(entry: dict) -> str:
    """One entry as one line of JSON: a few hundred bytes per image held in memory."""
    return json.dumps(entry, sort_keys=True, separators=(",", ":"))


class FathomNetStore:
    """Entries are held as compact JSON strings and metadata.json is streamed to disk, so memory
    per image is the size of its metadata line, never its pixels."""

    def __init__(self, images: Path, labels: Path, metadata: Path, flush_seconds: float = 2.0):
        self.images, self.labels, self.metadata = Path(images), Path(labels), Path(metadata)
        self.journal = self.metadata.with_name(JOURNAL_NAME)
        self.flush_seconds = flush_seconds
        self.entries: dict[str, str] = {}  # file name -> compact JSON entry
        self.added: set[str] = set()  # labelled in this run, with this run's mapping
        self.header: dict = {}
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._journal_fh = None
        self._next_flush = 0.0

    # -- set-up ----------------------------------------------------------------------------
    def prepare(self) -> None:
        """Create the folders and prove they are writable before any download starts."""
        for folder in (self.images, self.labels, self.metadata.parent):
            try:
                ensure_writable(folder)
            except OSError as exc:
                raise OutputNotWritable(f"output folder {folder} is not writable ({exc.strerror or exc})") from None
        self._remove_stale_temp_files()
        self._load()

    def _remove_stale_temp_files(self) -> None:
        for folder in (self.images, self.labels, self.metadata.parent):
            for p in folder.glob(".*"):
                if p.is_file() and is_leftover(p.name):
                    with contextlib.suppress(OSError):
                        p.unlink()

    def _load(self) -> None:
        if self.metadata.is_file():
            try:
                data = json.loads(self.metadata.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise MarauderError(f"unreadable metadata ({exc.msg}); move it away to start afresh",
                                    file=str(self.metadata), line=exc.lineno) from None
            if not isinstance(data, dict) or not all(isinstance(e, dict) and "file" in e
                                                     for e in data.get("images") or []):
                raise MarauderError("not a FathomNet download's metadata (expected {\"images\": [{\"file\": ...}]}); "
                                    "move it away to start afresh", file=str(self.metadata))
            self.header = {k: v for k, v in data.items() if k != "images"}
            for e in data.pop("images", []):
                self.entries[e["file"]] = compact(e)
        if self.journal.is_file():
            with open(self.journal, encoding="utf-8") as fh:
                for line in fh:
                    with contextlib.suppress(json.JSONDecodeError, KeyError, TypeError):
                        e = json.loads(line)  # a kill may have cut the last line: skip it
                        self.entries[e["file"]] = compact(e)
        # Only entries whose image is still on disk count as downloaded.
        self.entries = {f: e for f, e in self.entries.items() if (self.images / f).is_file()}

    def entry(self, file_name: str) -> dict | None:
        line = self.entries.get(file_name)
        return json.loads(line) if line is not None else None

    # -- writing ---------------------------------------------------------------------------
    def add(self, entry: dict, concept_to_class: dict[str, int], classes: list[str]) -> None:
        """Record a finished image: journal first (survives a kill), then its label file."""
        apply_classes(entry, concept_to_class, classes)
        line = compact(entry)
        with self._lock:
            if self._journal_fh is None:
                self._journal_fh = open(self.journal, "a", encoding="utf-8")  # noqa: SIM115
            self._journal_fh.write(line + "\n")
            self._journal_fh.flush()
            self.entries[entry["file"]] = line
            self.added.add(entry["file"])
        write_replace(self.labels / label_name(entry["file"]), label_text(entry))
        if time.monotonic() > self._next_flush:
            self.flush()

    def flush(self, final: bool = False) -> None:
        """Rewrite metadata.json (atomically, streamed). Periodic flushes are skipped while another
        one runs, and spaced so they take at most ~5% of the time however large the file grows."""
        if not self._flush_lock.acquire(blocking=final):
            return
        try:
            t0 = time.monotonic()
            with self._lock:
                items = sorted(self.entries.items())
            self._write_metadata(items, durable=final)
            self._next_flush = time.monotonic() + max(self.flush_seconds, 20 * (time.monotonic() - t0))
            if final:
                with self._lock:
                    if self._journal_fh is not None:
                        self._journal_fh.close()
                        self._journal_fh = None
                with contextlib.suppress(FileNotFoundError):
                    self.journal.unlink()
        finally:
            self._flush_lock.release()

    def _write_metadata(self, items: list[tuple[str, str]], durable: bool) -> None:
        fd, tmp = create_temp_sibling(self.metadata)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write("{\n")
                for key, value in self.header.items():
                    fh.write(f"  {json.dumps(key)}: {json.dumps(value)},\n")
                fh.write('  "images": [')
                for n, (_, line) in enumerate(items):
                    fh.write(("\n    " if n == 0 else ",\n    ") + line)
                fh.write("\n  ]\n}\n")
                if durable:
                    fh.flush()
                    os.fsync(fh.fileno())
            os.replace(tmp, self.metadata)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def write_classes(self, classes: list[str]) -> None:
        """classes.txt beside images/ and labels/: the organizer takes class names from it."""
        write_replace(self.metadata.with_name("classes.txt"), "".join(f"{c}\n" for c in classes))

    def relabel_all(self, concept_to_class: dict[str, int], classes: list[str]) -> int:
        """Make every label file from earlier runs match the current class mapping; returns how many changed."""
        changed = 0
        for file_name in sorted(self.entries):
            if file_name in self.added:
                continue
            entry = apply_classes(json.loads(self.entries[file_name]), concept_to_class, classes)
            self.entries[file_name] = compact(entry)
            path = self.labels / label_name(file_name)
            text = label_text(entry)
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                write_replace(path, text)
                changed += 1
        return changed


def label_name(image_file: str) -> str:
    return f"{os.path.splitext(image_file)[0]}.txt"


def write_replace(path: Path, data: str | bytes | bytearray) -> None:
    """Temp file + rename, without fsync: a kill never leaves half a file, and thousands of images and
    label files are not each forced to disk (metadata.json, written rarely, is)."""
    replace_file(path, data.encode("utf-8") if isinstance(data, str) else data, durable=False)
