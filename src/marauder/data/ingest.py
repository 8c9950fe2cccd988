"""`marauder ingest`: bring unlabelled imagery (DeepFish, own footage) into the workspace.

Images are copied (or linked) into data/<source>/images/ under a flattened relative name, skipping
any whose content (sha256) is already there. Videos become frames at `frame_rate` per second;
a frame whose perceptual hash is within `phash_distance` bits of the last kept frame of its clip
is dropped as a near-duplicate. Frame files are named `<clip>_t<seconds>s.jpg` and
data/<source>/metadata.json records, per file, its origin, clip, timestamp and group (the clip or
the source folder), so `organize --group-by meta:group` keeps a clip's frames in one split.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError, MarauderError
from ..fsio import atomic_write_json, ensure_writable, sha256_file
from ..log import get_logger, progress

log = get_logger("ingest")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv")
SOURCES = ("deepfish", "marauder")


# -- perceptual hash ------------------------------------------------------------------------
def phash(image: np.ndarray) -> int:
    """64-bit DCT perceptual hash: low-frequency structure survives noise, compression, small shifts."""
    import cv2

    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    small = cv2.resize(gray, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(small)[:8, :8].flatten()
    bits = low > np.median(low[1:])  # the DC term would dominate the median
    return int("".join("1" if b else "0" for b in bits), 2)


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


# -- results --------------------------------------------------------------------------------
@dataclass
class IngestResult:
    output: Path
    scanned: int = 0
    added: int = 0
    duplicates: int = 0
    unreadable: list[str] = field(default_factory=list)
    videos: int = 0
    frames_written: int = 0
    frames_near_duplicate: int = 0
    skipped_videos: list[str] = field(default_factory=list)  # videos for a source that takes none


def _flat_name(rel: Path) -> str:
    """a/b/c.JPG -> a__b__c.jpg: unique per source folder, keeps the folder (habitat, dive) visible."""
    stem = "__".join([*rel.parent.parts, rel.stem])
    return re.sub(r"[^\w.\-]+", "_", stem) + rel.suffix.lower()


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in sorted(filenames):
            if not f.startswith("."):
                yield Path(dirpath) / f


def _place(src: Path, dst: Path, link: str) -> None:
    """Copy/hardlink/symlink src to dst atomically (a kill never leaves half a file at dst)."""
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    os.close(fd)
    try:
        os.unlink(tmp)
        if link == "hardlink":
            try:
                os.link(src, tmp)
            except OSError:  # another filesystem: fall back to a copy
                shutil.copyfile(src, tmp)
        elif link == "symlink":
            os.symlink(src.resolve(), tmp)
        else:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _write_jpeg(path: Path, image: np.ndarray, quality: int) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise DataError("could not encode frame", file=str(path))
    data = buf.tobytes()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
    return data


def _image_readable(path: Path) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.verify()
        return True
    except Exception:
        return False


class _Index:
    """metadata.json of an ingest folder: entries by file name, plus known content hashes."""

    def __init__(self, folder: Path, source: str):
        self.path = folder.parent / "metadata.json"
        self.folder = folder
        self.entries: dict[str, dict] = {}
        self.clips: dict[str, dict] = {}
        if self.path.is_file():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise DataError(f"unreadable ingest metadata ({exc.msg})", file=str(self.path),
                                line=exc.lineno) from None
            if not isinstance(data, dict) or not all(isinstance(e, dict) and "file" in e
                                                     for e in data.get("images") or []):
                raise DataError("not an ingest metadata file (expected {\"images\": [{\"file\": ...}, ...]}); "
                                "move it away or choose another workspace", file=str(self.path))
            self.entries = {e["file"]: e for e in data.get("images", []) if (folder / e["file"]).exists()}
            self.clips = data.get("clips", {})
        self.source = source
        self.hashes = {e["sha256"]: f for f, e in self.entries.items() if e.get("sha256")}
        # Images placed in the folder by hand (the guide's "copy your images here") count too.
        for p in sorted(folder.iterdir()) if folder.is_dir() else []:
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and p.name not in self.entries:
                h = sha256_file(p)
                self.entries[p.name] = {"file": p.name, "sha256": h, "origin": None, "group": "manual"}
                self.hashes.setdefault(h, p.name)

    def add(self, entry: dict) -> None:
        self.entries[entry["file"]] = entry
        if entry.get("sha256"):
            self.hashes[entry["sha256"]] = entry["file"]

    def drop_clip(self, clip: str) -> None:
        for name in [f for f, e in self.entries.items() if e.get("clip") == clip]:
            (self.folder / name).unlink(missing_ok=True)
            self.hashes.pop(self.entries.pop(name).get("sha256"), None)

    def save(self) -> None:
        atomic_write_json(self.path, {"source": self.source, "group_key": "group", "clips": self.clips,
                                      "images": [self.entries[f] for f in sorted(self.entries)]})


def _unique_name(folder: Path, name: str, sha: str) -> str:
    if not (folder / name).exists():
        return name
    stem, suffix = os.path.splitext(name)
    return f"{stem}_{sha[:8]}{suffix}"


def _ingest_image(path: Path, root: Path, index: _Index, out: Path, link: str, result: IngestResult) -> None:
    sha = sha256_file(path)
    if sha in index.hashes:
        result.duplicates += 1
        return
    if not _image_readable(path):
        result.unreadable.append(str(path))
        return
    rel = path.relative_to(root)
    if len(rel.parts) > 1 and rel.parts[0].lower() == "images":  # DIR/images/...: the usual dataset layout
        rel = Path(*rel.parts[1:])
    name = _unique_name(out, _flat_name(rel), sha)
    _place(path, out / name, link)
    top = root.parent.name if root.name.lower() == "images" else root.name
    group = rel.parts[0] if len(rel.parts) > 1 else top  # a sub-folder (habitat, dive) or the source folder
    index.add({"file": name, "sha256": sha, "origin": str(rel), "group": group})
    result.added += 1


def extract_frames(video: Path, out: Path, clip: str, frame_rate: float, phash_distance: int,
                   quality: int, index: _Index, result: IngestResult) -> int:
    """Write frames of `video` sampled at `frame_rate`/s, dropping near-duplicates; returns frames kept."""
    import cv2

    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        cap.release()
        return -1
    try:
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        if not fps or fps != fps or fps > 1000:
            fps = 25.0  # containers without a usable rate: assume PAL
        step = max(fps / frame_rate, 1.0)
        next_pick, index_no, kept, last_hash = 0.0, 0, 0, None
        while True:
            if index_no + 0.5 < next_pick:
                if not cap.grab():
                    break
                index_no += 1
                continue
            ok, frame = cap.read()
            if not ok:
                break
            t = index_no / fps
            index_no += 1
            next_pick += step
            h = phash(frame)
            if last_hash is not None and hamming(h, last_hash) < phash_distance:
                result.frames_near_duplicate += 1
                continue
            last_hash = h
            name = f"{clip}_t{t:09.3f}s.jpg"
            data = _write_jpeg(out / name, frame, quality)
            index.add({"file": name, "sha256": hashlib.sha256(data).hexdigest(), "origin": video.name,
                       "clip": clip, "timestamp_s": round(t, 3), "frame_index": index_no - 1,
                       "phash": f"{h:016x}", "group": clip})
            kept += 1
    finally:
        cap.release()
    return kept


def run_ingest(source_dir: Path, source: str, output: Path, *, frame_rate: float = 1.0,
               phash_distance: int = 6, link: str = "copy", jpeg_quality: int = 95) -> IngestResult:
    """Ingest `source_dir` (recursively) into `output` (data/<source>/images)."""
    source_dir = Path(source_dir)
    if source not in SOURCES:
        raise MarauderError(f"unknown source '{source}': choose one of {', '.join(SOURCES)}")
    if not source_dir.is_dir():
        raise DataError("not a folder", file=str(source_dir))
    try:
        ensure_writable(output)
    except OSError as exc:
        raise MarauderError(f"output folder {output} is not writable ({exc.strerror or exc})") from None
    for stale in output.glob(".*.tmp"):
        stale.unlink(missing_ok=True)
    index = _Index(output, source)
    result = IngestResult(output)
    files = [p for p in _walk(source_dir) if p.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES]
    if not files:
        raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) or videos ({', '.join(VIDEO_SUFFIXES)}) found",
                        file=str(source_dir))
    last_save = time.monotonic()
    try:
        for path in progress(files, f"ingesting {source}"):
            result.scanned += 1
            if time.monotonic() - last_save > 2.0:  # a kill loses at most a few seconds of records
                index.save()
                last_save = time.monotonic()
            if path.suffix.lower() in IMAGE_SUFFIXES:
                _ingest_image(path, source_dir, index, output, link, result)
                continue
            if source != "marauder":
                result.skipped_videos.append(str(path))
                continue
            sha = sha256_file(path)
            settings = {"frame_rate": frame_rate, "phash_distance": phash_distance}
            done = index.clips.get(sha)
            if done is not None and all(done.get(k) == v for k, v in settings.items()):
                result.duplicates += 1
                continue
            clip = re.sub(r"[^\w\-]+", "_", path.relative_to(source_dir).with_suffix("").as_posix().replace("/", "__"))
            if done is not None:  # same clip, new settings: its old frames go, new ones replace them
                index.drop_clip(done["clip"])
            kept = extract_frames(path, output, clip, frame_rate, phash_distance, jpeg_quality, index, result)
            if kept < 0:
                result.unreadable.append(str(path))
                log.warning("skipped %s: OpenCV cannot open it", path)
                continue
            result.videos += 1
            result.frames_written += kept
            index.clips[sha] = {"clip": clip, "origin": str(path.relative_to(source_dir)), "frames": kept, **settings}
            index.save()  # a clip is done: record it so a rerun skips it
    finally:
        index.save()
    return result
