"""Dataset checks shared by `marauder validate-data` and the organizer.

Finds unreadable or truncated images, malformed label lines (field count, non-numbers, coordinates
outside [0,1], zero area, unknown class ids), label files without an image, and byte-identical
images (same sha256) in more than one split. `quarantine` moves offending files aside with a
reason file next to each; nothing is ever deleted.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..errors import DataError
from ..formats.yolo import crowd_label_path, parse_label_text
from ..fsio import atomic_write_text, list_images, sha256_file
from .dataset import SPLIT_NAMES, label_path_for_image, load_dataset_yaml, split_images

# Issue kinds, in report order. Label kinds come from marauder.formats.yolo.LabelIssue.kind.
KINDS = ("unreadable", "truncated", "fields", "value", "class", "bounds", "zero_area", "orphan_label",
         "duplicate")
QUARANTINE_DIR = "quarantine"


@dataclass(frozen=True)
class Issue:
    kind: str
    file: Path
    message: str
    line: int | None = None
    split: str | None = None
    related: Path | None = None  # the other copy, for duplicates

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else str(self.file)
        return f"{where}: [{self.kind}] {self.message}"


@dataclass(frozen=True)
class ImageRecord:
    """One image of a dataset being checked, with where its label file would be."""

    image: Path
    label: Path
    split: str


@dataclass
class ValidationReport:
    root: Path
    n_images: int = 0
    n_labels: int = 0
    n_boxes: int = 0
    names: list[str] | None = None
    issues: list[Issue] = field(default_factory=list)
    quarantined: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.issues

    def by_kind(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for issue in self.issues:
            counts[issue.kind] += 1
        return dict(counts)


# ----------------------------------------------------------------------------------------------
# Single-file checks (the organizer calls these on its sources)
# ----------------------------------------------------------------------------------------------
def _jpeg_complete(path: Path) -> bool:
    """A whole JPEG ends with the end-of-image marker FFD9 (cheap: reads two bytes)."""
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        if fh.tell() < 4:
            return False
        fh.seek(-2, os.SEEK_END)
        return fh.read(2) == b"\xff\xd9"


def check_image(path: Path, full_decode: bool = False) -> Issue | None:
    """Is the image whole? Unreadable: PIL cannot identify or parse it; truncated: it stops early.

    PIL's verify() checks structure (and PNG checksums) without decoding pixels. A JPEG that ends
    with its end-of-image marker is taken as whole; one that does not is decoded in full, which
    tells a cut file (truncated) from one with harmless bytes after the marker. `full_decode`
    decodes every image (slower, catches corrupt data inside a complete-looking file).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            fmt = im.format
            if im.width < 1 or im.height < 1:
                return Issue("unreadable", path, "image has zero size")
            im.verify()
        if full_decode or fmt != "JPEG" or not _jpeg_complete(path):
            with Image.open(path) as im:
                im.load()
    except UnidentifiedImageError:
        return Issue("unreadable", path, "not an image file PIL can identify")
    except OSError as exc:
        if "truncat" in str(exc).lower():
            return Issue("truncated", path, f"image is truncated ({exc})")
        return Issue("unreadable", path, f"cannot decode image ({exc})")
    except Exception as exc:  # PIL raises SyntaxError/ValueError for some corrupt headers
        return Issue("unreadable", path, f"cannot decode image ({type(exc).__name__}: {exc})")
    return None


def check_label_file(path: Path, num_classes: int | None) -> tuple[list[Issue], int]:
    """Issues of one label file (with line numbers) and the number of valid boxes in it."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [Issue("fields", path, f"cannot read label file ({exc})")], 0
    rows, label_issues = parse_label_text(text, str(path), num_classes)
    issues = [Issue(li.kind if li.kind in KINDS else "value", path, li.problem, li.line) for li in label_issues]
    return issues, len(rows)


def find_duplicates(records: Iterable[ImageRecord], *, across_splits_only: bool = True,
                    hashes: dict[Path, str] | None = None) -> list[Issue]:
    """Images with identical bytes. By default only copies that sit in different splits are issues."""
    by_hash: dict[str, list[ImageRecord]] = defaultdict(list)
    for rec in records:
        digest = hashes[rec.image] if hashes is not None else sha256_file(rec.image)
        by_hash[digest].append(rec)
    issues = []
    order = {s: i for i, s in enumerate((*SPLIT_NAMES, "all"))}
    for digest, recs in by_hash.items():
        if len(recs) < 2:
            continue
        recs = sorted(recs, key=lambda r: (order.get(r.split, 9), str(r.image)))
        keep = recs[0]
        for other in recs[1:]:
            if across_splits_only and other.split == keep.split:
                continue
            issues.append(Issue("duplicate", other.image,
                                f"same image (sha256 {digest[:12]}) as {keep.image} in split '{keep.split}'",
                                split=other.split, related=keep.image))
    return issues


# ----------------------------------------------------------------------------------------------
# Whole-dataset validation
# ----------------------------------------------------------------------------------------------
def _read_names(path: Path) -> list[str] | None:
    if not path.is_file():
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"class names file is not UTF-8 text ({exc.reason})", file=str(path)) from None
    names = [line.strip() for line in text.splitlines() if line.strip()]
    return names or None


def collect_records(target: Path) -> tuple[Path, list[ImageRecord], list[Path], list[str] | None]:
    """Find the images, their label paths, the label folders and class names of a dataset.

    `target` may be a dataset.yaml, a folder holding one (organised layout), or a flat folder with
    images/ and labels/ (and optionally classes.txt), like the sample or a download.
    """
    target = Path(target)
    if not target.exists():
        raise DataError("dataset folder or dataset.yaml not found", file=str(target))
    yaml_path = target if target.is_file() else target / "dataset.yaml"
    if yaml_path.is_file():
        spec = load_dataset_yaml(yaml_path)
        records, label_dirs = [], []
        for split in SPLIT_NAMES:
            if not spec.has_split(split):
                continue
            for image in split_images(spec, split):
                records.append(ImageRecord(image, label_path_for_image(image), split))
            for entry in spec.splits[split]:
                if entry.is_dir():
                    label_dirs.append(label_path_for_image(entry / "x.jpg").parent)
        return yaml_path.parent, records, label_dirs, spec.names
    images_dir, labels_dir = target / "images", target / "labels"
    if not images_dir.is_dir():
        raise DataError("expected dataset.yaml or an images/ folder", file=str(target))
    records = [ImageRecord(img, labels_dir / img.relative_to(images_dir).with_suffix(".txt"), "all")
               for img in list_images(images_dir, recursive=True)]
    return target, records, [labels_dir], _read_names(target / "classes.txt")


def validate_dataset(target: str | Path, *, num_classes: int | None = None, show_progress: bool = True,
                     full_decode: bool = False) -> ValidationReport:
    """Run every check on a dataset and return all issues (nothing is changed)."""
    from ..log import progress

    root, records, label_dirs, names = collect_records(Path(target))
    nc = num_classes if num_classes is not None else (len(names) if names else None)
    report = ValidationReport(root, n_images=len(records), names=names)
    hashes: dict[Path, str] = {}
    items = progress(records, "validating images") if show_progress else records
    for rec in items:
        if (problem := check_image(rec.image, full_decode)) is not None:
            report.issues.append(Issue(problem.kind, rec.image, problem.message, split=rec.split))
        hashes[rec.image] = sha256_file(rec.image)
        if rec.label.is_file():
            report.n_labels += 1
            issues, n_boxes = check_label_file(rec.label, nc)
            report.n_boxes += n_boxes
            report.issues.extend(Issue(i.kind, i.file, i.message, i.line, rec.split) for i in issues)
        if (crowd := crowd_label_path(rec.label)).is_file():  # same format, same checks
            issues, _ = check_label_file(crowd, nc)
            report.issues.extend(Issue(i.kind, i.file, i.message, i.line, rec.split) for i in issues)
    known = {p.resolve() for rec in records for p in (rec.label, crowd_label_path(rec.label))}
    for labels_dir in dict.fromkeys(label_dirs):
        if not labels_dir.is_dir():
            continue
        for label in sorted(labels_dir.rglob("*.txt")):
            if label.name == "classes.txt":  # class names (organize reads labels/classes.txt), not a label
                continue
            if label.resolve() not in known and QUARANTINE_DIR not in label.parts:
                report.issues.append(Issue("orphan_label", label, "label file has no matching image"))
    report.issues.extend(find_duplicates(records, hashes=hashes))
    report.issues.sort(key=lambda i: (KINDS.index(i.kind), str(i.file), i.line or 0))
    return report


# ----------------------------------------------------------------------------------------------
# Quarantine (--fix)
# ----------------------------------------------------------------------------------------------
def _move(src: Path, root: Path, dest_root: Path, reason: str) -> Path:
    """Move src under dest_root keeping its path relative to root; write <name>.reason.txt beside it."""
    try:
        rel = src.resolve().relative_to(root.resolve())
    except ValueError:  # outside the dataset folder (a yaml pointing elsewhere): keep the name only
        rel = Path(src.name)
    dest = dest_root / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():  # never overwrite an earlier quarantined copy
        stem, n = dest.name, 1
        while dest.exists():
            dest = dest.with_name(f"{stem}.{n}")
            n += 1
    os.replace(src, dest)
    atomic_write_text(dest.with_name(dest.name + ".reason.txt"), reason + "\n")
    return dest


def quarantine(report: ValidationReport, folder: Path | None = None) -> list[Path]:
    """Move every file with an issue (and its image/label partner) into the quarantine folder.

    A bad label file takes its image with it, so the image is not trained on as if it were empty.
    Returns the new paths; a reasons.jsonl in the quarantine folder lists what moved and why.
    """
    dest_root = folder or report.root / QUARANTINE_DIR
    reasons: dict[Path, list[str]] = defaultdict(list)
    for issue in report.issues:
        reasons[issue.file].append(str(issue))
    moves: dict[Path, str] = {}
    for path, why in reasons.items():
        text = "\n".join(why)
        moves[path] = text
        partner = (label_path_for_image(path) if path.suffix != ".txt" else None)
        if path.suffix == ".txt":
            # label file: take its image along when there is one
            for suffix in (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"):
                parts = list(path.with_suffix(suffix).parts)
                if "labels" in parts:
                    i = len(parts) - 1 - parts[::-1].index("labels")
                    parts[i] = "images"
                    candidate = Path(*parts)
                    if candidate.is_file():
                        partner = candidate
                        break
        if partner is not None and partner.is_file() and partner not in reasons:
            moves.setdefault(partner, f"moved with {path.name}:\n{text}")
    moved = []
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    log_lines = []
    for path, why in moves.items():
        if not path.exists():
            continue
        dest = _move(path, report.root, dest_root, why)
        moved.append(dest)
        log_lines.append(json.dumps({"time": stamp, "from": str(path), "to": str(dest), "reason": why}))
    if log_lines:
        log = dest_root / "reasons.jsonl"
        previous = log.read_text(encoding="utf-8") if log.is_file() else ""
        atomic_write_text(log, previous + "\n".join(log_lines) + "\n")
    report.quarantined.extend(moved)
    return moved
