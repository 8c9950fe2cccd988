"""Split a labelled image folder into train/val/test: stratified, group-aware, deterministic, atomic.

Images that share a group (a dive, a video, a habitat) always land in the same split, so
near-duplicate frames cannot leak from training into evaluation. Byte-identical images are
forced into one group for the same reason. Within that constraint, groups are placed so every
class shows up in every split where there are enough groups carrying it, and the image counts
follow the requested fractions. The output (images/<split>, labels/<split>, dataset.yaml,
manifest.json) is built in a temporary sibling folder and renamed into place at the end.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
import random
import re
import shutil
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import DataError, MissingInputError
from ..formats.yolo import crowd_label_path, is_crowd_file
from ..fsio import atomic_directory, atomic_write_json, atomic_write_text, list_images, sha256_file
from .dataset import SPLIT_NAMES
from .validate import Issue, check_image, check_label_file

MANIFEST = "manifest.json"
DATASET_YAML = "dataset.yaml"


@dataclass(frozen=True)
class SourceImage:
    image: Path
    rel: Path  # path below the source images folder (kept in the output)
    label: Path | None
    sha256: str
    classes: tuple[int, ...]  # class id of every box
    group: str


@dataclass(frozen=True)
class OrganizeResult:
    output: Path
    dataset_yaml: Path
    manifest: Path
    names: list[str]
    counts: dict[str, dict]  # split -> {"images", "boxes", "groups", "classes": {name: boxes}}
    skipped: list[Issue] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    unchanged: bool = False  # the output already held exactly this dataset


# ----------------------------------------------------------------------------------------------
# Inputs: names, groups
# ----------------------------------------------------------------------------------------------
def _parse_names(names: Sequence[str] | str | None) -> list[str] | None:
    if names is None:
        return None
    if isinstance(names, str):
        names = [names]
    out: list[str] = []
    for item in names:  # accept "a b", "a,b" and repeated arguments alike
        out.extend(n for n in re.split(r"[,\s]+", str(item)) if n)
    return out or None


def _classes_txt_candidates(source_images: Path, source_labels: Path) -> list[Path]:
    return list(dict.fromkeys([
        source_images.parent / "classes.txt", source_labels.parent / "classes.txt",
        source_labels / "classes.txt", source_images / "classes.txt",
    ]))


def resolve_names(names, source_images: Path, source_labels: Path,
                  fallback: Sequence[str] | None) -> tuple[list[str], str]:
    """Class names and where they came from: --names, else classes.txt beside the sources, else config."""
    if (explicit := _parse_names(names)) is not None:
        return explicit, "--names"
    for candidate in _classes_txt_candidates(source_images, source_labels):
        if candidate.is_file():
            try:
                text = candidate.read_text(encoding="utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(f"class names file is not UTF-8 text ({exc.reason})", file=str(candidate)) from None
            found = [ln.strip() for ln in text.splitlines() if ln.strip()]
            if found:
                return found, str(candidate)
    if fallback:
        return list(fallback), "config general.classes"
    raise DataError("no class names: pass --names, put a classes.txt beside the source folders, "
                    "or set general.classes in the config", file=str(source_labels))


def _load_metadata_groups(source_images: Path, key: str | None) -> tuple[dict[str, str], str | None]:
    """file name -> group value from metadata.json (or source_map.csv) beside the images folder.

    metadata.json may be a list of records or {"group_key": ..., "images": [records]}; each record
    names its file under "file", "file_name", "filename" or "image". With key=None the file's own
    "group_key" is used when present (what the downloader and the sample write).
    """
    parent = source_images.parent
    meta, csv_path = parent / "metadata.json", parent / "source_map.csv"
    rows: list[dict] = []
    default_key = None
    if meta.is_file():
        try:
            doc = json.loads(meta.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(f"not valid JSON: {exc.msg}", file=str(meta), line=exc.lineno) from None
        except UnicodeDecodeError as exc:
            raise DataError(f"not UTF-8 text ({exc.reason})", file=str(meta)) from None
        if isinstance(doc, dict):
            default_key = doc.get("group_key")
            rows = doc.get("images") or doc.get("records") or []
        elif isinstance(doc, list):
            rows = doc
    elif csv_path.is_file() and key is not None:
        with csv_path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    explicit = key is not None
    key = key or default_key
    if key is None or not rows:
        if explicit:
            raise DataError(f"--group-by meta:{key}: no metadata.json or source_map.csv with records beside "
                            "the images", file=str(source_images))
        return {}, None  # automatic mode: no usable metadata simply means no groups
    groups: dict[str, str] = {}
    for row in rows:
        if not isinstance(row, dict):
            continue
        name = row.get("file") or row.get("file_name") or row.get("filename") or row.get("image")
        if name is not None and row.get(key) is not None:
            groups[Path(str(name)).name] = str(row[key])
    if not groups and explicit:
        source = meta if meta.is_file() else csv_path
        raise DataError(f"--group-by meta:{key}: no record has the key '{key}'", file=str(source))
    if not groups:
        return {}, None
    return groups, key


def make_grouper(group_by: str | None, source_images: Path):
    """A function file name -> group, and a description of the rule (for the manifest and logs)."""
    if group_by and group_by.startswith("meta:"):
        groups, key = _load_metadata_groups(source_images, group_by[5:] or None)
        return (lambda name: groups.get(name)), f"meta:{key}"
    if group_by:
        try:
            pattern = re.compile(group_by)
        except re.error as exc:
            raise DataError(f"--group-by: invalid regular expression '{group_by}': {exc}") from None
        if pattern.groups < 1:
            raise DataError(f"--group-by '{group_by}' needs a capture group, e.g. 'dive([0-9]+)_'")

        def by_regex(name: str) -> str | None:
            m = pattern.search(name)
            return m.group(1) if m else None

        return by_regex, f"regex:{group_by}"
    groups, key = _load_metadata_groups(source_images, None)
    if key is not None:
        return (lambda name: groups.get(name)), f"meta:{key}"
    return (lambda name: None), "none (every image is its own group)"


# ----------------------------------------------------------------------------------------------
# Split assignment
# ----------------------------------------------------------------------------------------------
class _Unions:
    def __init__(self):
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def assign_splits(groups: dict[str, list[SourceImage]], fractions: Sequence[float], n_classes: int,
                  seed: int) -> dict[str, str]:
    """group -> split. Deterministic for a seed; never splits a group.

    1. Coverage: for each class, rarest first, give every split (with a non-zero fraction) that
       lacks it one group carrying it, as long as unplaced groups carrying it remain.
       Train takes the largest such group, val/test the smallest, to keep evaluation splits small.
    2. Balance: remaining groups, largest first, go to the split furthest below its image and
       per-class box targets.
    """
    rng = random.Random(seed)
    keys = sorted(groups)
    rng.shuffle(keys)  # the seed decides ties
    n_images = {g: len(groups[g]) for g in keys}
    box_counts = {g: Counter(c for im in groups[g] for c in im.classes) for g in keys}
    total_images = sum(n_images.values())
    total_boxes = Counter()
    for c in box_counts.values():
        total_boxes.update(c)
    active = [s for s, f in zip(SPLIT_NAMES, fractions) if f > 0]
    target_img = {s: f * total_images for s, f in zip(SPLIT_NAMES, fractions)}
    target_box = {s: {c: f * total_boxes[c] for c in total_boxes} for s, f in zip(SPLIT_NAMES, fractions)}
    cur_img = dict.fromkeys(SPLIT_NAMES, 0)
    cur_box = {s: Counter() for s in SPLIT_NAMES}
    assigned: dict[str, str] = {}

    def place(g: str, s: str) -> None:
        assigned[g] = s
        cur_img[s] += n_images[g]
        cur_box[s].update(box_counts[g])

    carriers = {c: [g for g in keys if box_counts[g][c] > 0] for c in range(n_classes)}
    for c in sorted(carriers, key=lambda c: (len(carriers[c]), c)):
        for s in active:
            if cur_box[s][c] > 0:
                continue
            free = [g for g in carriers[c] if g not in assigned]
            if not free:
                break
            if s == "train":
                pick = max(free, key=lambda g: n_images[g])
            else:  # smallest group that does not overshoot this split's image target, if any
                fitting = [g for g in free if cur_img[s] + n_images[g] <= max(target_img[s], 1)]
                pick = min(fitting or free, key=lambda g: n_images[g])
            place(pick, s)

    def need(s: str, g: str) -> float:
        score = (target_img[s] - cur_img[s]) / max(total_images, 1)
        for c, n in box_counts[g].items():
            score += (target_box[s][c] - cur_box[s][c]) / max(total_boxes[c], 1) * n / max(sum(
                box_counts[g].values()), 1)
        return score

    for g in sorted((g for g in keys if g not in assigned), key=lambda g: -n_images[g]):
        place(g, max(active, key=lambda s: need(s, g)))
    return assigned


def _group_images(sources: list[SourceImage]) -> tuple[_Unions, dict[str, list[SourceImage]]]:
    """Groups of images that must share a split: their own group, merged where bytes are identical."""
    unions = _Unions()
    by_sha: dict[str, str] = {}
    for src in sources:
        unions.find(src.group)
        if src.sha256 in by_sha:
            unions.union(by_sha[src.sha256], src.group)
        else:
            by_sha[src.sha256] = src.group
    groups: dict[str, list[SourceImage]] = defaultdict(list)
    for src in sources:
        groups[unions.find(src.group)].append(src)
    return unions, groups


def rare_class_notes(counts: dict, fractions: Sequence[float]) -> list[str]:
    """One line per class missing from a non-empty split: too few images (or groups) carry it, so it went
    to train first, then val."""
    notes = []
    active = [s for s, f in zip(SPLIT_NAMES, fractions) if f > 0]
    for name in next(iter(counts.values()))["classes"]:
        present = [s for s in active if counts[s]["classes"][name] > 0]
        if present and len(present) < len(active):
            notes.append(f"class {name!r} has too few images for {len(active)} splits: only in "
                         f"{', '.join(present)}")
    return notes


def check_no_leak(split_of_image: dict[Path, str], sha_of_image: dict[Path, str]) -> None:
    """Refuse a split where identical image bytes sit in two splits (a train/test leak)."""
    first: dict[str, tuple[Path, str]] = {}
    for image, split in split_of_image.items():
        digest = sha_of_image[image]
        if digest in first and first[digest][1] != split:
            other, other_split = first[digest]
            raise DataError(f"duplicate image leaks across splits: same bytes as {other} ({other_split}) "
                            f"would be in '{split}'", file=str(image))
        first.setdefault(digest, (image, split))


# ----------------------------------------------------------------------------------------------
# The organizer
# ----------------------------------------------------------------------------------------------
def _check_fractions(split: Sequence[float]) -> tuple[float, float, float]:
    if len(split) != 3:
        raise DataError(f"--split needs three fractions (train val test), got {len(split)}")
    fr = tuple(float(f) for f in split)
    if any(f < 0 for f in fr) or abs(sum(fr) - 1.0) > 1e-6:
        raise DataError(f"--split fractions must be >= 0 and sum to 1, got {' '.join(map(str, fr))} "
                        f"(sum {sum(fr):g})")
    if fr[0] <= 0:
        raise DataError("--split: the train fraction must be > 0")
    return fr  # type: ignore[return-value]


def _fingerprint(sources: list[SourceImage], names, fractions, seed, group_rule, label_texts,
                 crowd_texts) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([names, list(fractions), seed, group_rule]).encode())
    for src in sources:
        crowd = f"\0crowd\0{crowd_texts[src.rel]}" if src.rel in crowd_texts else ""  # old datasets keep theirs
        h.update(f"{src.rel}\0{src.sha256}\0{label_texts[src.rel]}{crowd}\n".encode())
    return h.hexdigest()


def _existing_fingerprint(output: Path) -> str | None:
    """The fingerprint of an organised dataset already at `output`; DataError if it is something else."""
    if not output.exists():
        return None
    if not output.is_dir():
        raise DataError("output exists and is not a folder", file=str(output))
    if not any(output.iterdir()):
        return None
    manifest = output / MANIFEST
    if not manifest.is_file():
        raise DataError("output folder is not empty and holds no marauder manifest (a different dataset?); "
                        "choose another --output", file=str(output))
    try:
        return json.loads(manifest.read_text(encoding="utf-8")).get("fingerprint")
    except (json.JSONDecodeError, AttributeError):
        raise DataError("unreadable manifest in output folder", file=str(manifest)) from None


def _place_file(src: Path, dest: Path, link: str) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if link == "hardlink":
        try:
            os.link(src, dest)
            return
        except OSError:  # another filesystem: a copy is the honest fallback
            pass
    shutil.copyfile(src, dest)


def scan_sources(source_images: Path, source_labels: Path, n_classes: int, grouper,
                 skip_invalid: bool, show_progress: bool = True) -> tuple[list[SourceImage], list[Issue], dict]:
    """Check every source image and label (same checks as validate-data) and read their classes.
    Returns (sources, problems, label text per image, crowd-region text per image that has any)."""
    from ..log import progress

    images = list_images(source_images, recursive=True)
    if not images:
        raise DataError("no images found", file=str(source_images))
    sources, problems, label_texts, crowd_texts = [], [], {}, {}
    for image in (progress(images, "checking sources") if show_progress else images):
        rel = image.relative_to(source_images)
        label = source_labels / rel.with_suffix(".txt")
        issues: list[Issue] = []
        if (bad := check_image(image)) is not None:
            issues.append(bad)
        text, classes = "", ()
        if label.is_file():
            label_issues, _ = check_label_file(label, n_classes)
            issues.extend(label_issues)
            if not label_issues:
                text = label.read_text(encoding="utf-8")
                classes = tuple(int(float(line.split()[0])) for line in text.splitlines() if line.strip())
        crowd = crowd_label_path(label)
        if crowd.is_file():  # COCO crowd regions travel with their image
            crowd_issues, _ = check_label_file(crowd, n_classes)
            issues.extend(crowd_issues)
            if not crowd_issues and (regions := crowd.read_text(encoding="utf-8")).strip():
                crowd_texts[rel] = regions
        if issues:
            problems.extend(issues)
            continue
        group = grouper(image.name)
        sources.append(SourceImage(image, rel, label if label.is_file() else None, sha256_file(image),
                                   classes, f"g:{group}" if group is not None else f"image:{rel}"))
        label_texts[rel] = text
    if problems and not skip_invalid:
        first = problems[0]
        raise DataError(f"{first.message} ({len(problems)} problem(s) in the sources; run `marauder "
                        f"validate-data {source_images.parent} --fix` or pass --skip-invalid)",
                        file=str(first.file), line=first.line)
    if not sources:
        raise DataError("every source image has a problem; nothing to organise", file=str(source_images))
    return sources, problems, label_texts, crowd_texts


def organize_dataset(
    source_images: str | Path,
    source_labels: str | Path,
    output: str | Path,
    split: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    group_by: str | None = None,
    names: Sequence[str] | str | None = None,
    link: str = "copy",
    *,
    default_names: Sequence[str] | None = None,
    skip_invalid: bool = False,
    overwrite: bool = False,
    show_progress: bool = True,
    extra_files: dict[str, str] | None = None,
) -> OrganizeResult:
    """Organise `source_images` + `source_labels` into `output` (see the module docstring).

    `extra_files` (relative name -> text) are written inside the same atomic folder, e.g. the
    resolved config of the run.
    """
    from ..log import get_logger, progress

    log = get_logger("organize")
    source_images, source_labels, output = Path(source_images), Path(source_labels), Path(output)
    fractions = _check_fractions(split)
    if link not in ("copy", "hardlink"):
        raise DataError(f"--link must be 'copy' or 'hardlink', got '{link}'")
    for folder in (source_images, source_labels):
        if not folder.is_dir():
            raise MissingInputError(folder, "marauder download` or `marauder sample --into-workspace")
    for folder in (source_images, source_labels):
        out, src = output.resolve(), folder.resolve()
        if out == src or out.is_relative_to(src) or src.is_relative_to(out):
            # inside a source, each rerun would read its own output back in; around one, the atomic
            # swap of the output folder would delete the source
            raise DataError(f"output must not be, contain, or sit inside the source folder {folder}",
                            file=str(output))
    class_names, names_from = resolve_names(names, source_images, source_labels, default_names)
    previous = _existing_fingerprint(output)  # fail early, before reading every image
    grouper, group_rule = make_grouper(group_by, source_images)
    sources, skipped, label_texts, crowd_texts = scan_sources(source_images, source_labels, len(class_names),
                                                              grouper, skip_invalid, show_progress)
    warnings = [f"skipped {len(skipped)} source file(s) with problems (first: {skipped[0]})"] if skipped else []
    # A label whose image is missing is dropped; many of them usually mean mismatched names, which
    # would otherwise silently turn every image into a background frame.
    stems = {p.relative_to(source_images).with_suffix("") for p in list_images(source_images, recursive=True)}
    orphans = sorted(p for p in source_labels.rglob("*.txt")
                     if p.name != "classes.txt" and not is_crowd_file(p)
                     and p.relative_to(source_labels).with_suffix("") not in stems)
    if orphans:
        warnings.append(f"{len(orphans)} label file(s) have no image and are left out (first: {orphans[0]}); "
                        "check that image and label names match")

    unions, groups = _group_images(sources)
    n_dupes = len(sources) - len({src.sha256 for src in sources})
    if n_dupes:
        warnings.append(f"{n_dupes} image(s) are byte-identical copies of others; kept in the same split")
    n_active = sum(f > 0 for f in fractions)
    if len(groups) < n_active and len(sources) >= n_active:
        # One dive, one contributor: a group-aware split would leave val/test empty and the next stage
        # would fail. Split by image instead, and say that frames of one group now share splits.
        warnings.append(f"only {len(groups)} group(s) ({group_rule}) for {n_active} non-empty splits: split by "
                        "image instead; leakage across splits (near-identical frames of one group) could not "
                        "be ruled out")
        sources = [dataclasses.replace(src, group=f"image:{src.rel.as_posix()}") for src in sources]
        group_rule = f"images (fallback: {group_rule} gave {len(groups)} group(s))"
        unions, groups = _group_images(sources)

    fingerprint = _fingerprint(sources, class_names, fractions, seed, group_rule, label_texts, crowd_texts)
    if previous is not None and previous == fingerprint:
        log.info("%s already holds this exact dataset; nothing to do", output)
        manifest = json.loads((output / MANIFEST).read_text(encoding="utf-8"))
        return OrganizeResult(output, output / DATASET_YAML, output / MANIFEST, class_names,
                              manifest.get("counts", {}), skipped, warnings, unchanged=True)
    if previous is not None and not overwrite:
        raise DataError("output folder already holds a different organised dataset; choose another "
                        "--output or pass --overwrite", file=str(output))

    split_of_group = assign_splits(groups, fractions, len(class_names), seed)
    split_of: dict[Path, str] = {src.image: split_of_group[unions.find(src.group)] for src in sources}
    check_no_leak(split_of, {src.image: src.sha256 for src in sources})

    counts = {s: {"images": 0, "boxes": 0, "groups": 0, "classes": dict.fromkeys(class_names, 0)}
              for s in SPLIT_NAMES}
    for g in groups:
        counts[split_of_group[g]]["groups"] += 1
    files = []
    with atomic_directory(output, replace=True) as tmp:
        ordered = sorted(sources, key=lambda s: str(s.rel))
        for src in (progress(ordered, f"writing {output.name}") if show_progress else ordered):
            s = split_of[src.image]
            img_rel = Path("images") / s / src.rel
            lbl_rel = Path("labels") / s / src.rel.with_suffix(".txt")
            _place_file(src.image, tmp / img_rel, link)
            (tmp / lbl_rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / lbl_rel).write_text(label_texts[src.rel], encoding="utf-8")
            if src.rel in crowd_texts:
                (tmp / crowd_label_path(lbl_rel)).write_text(crowd_texts[src.rel], encoding="utf-8")
            per_class = Counter(class_names[c] for c in src.classes)
            counts[s]["images"] += 1
            counts[s]["boxes"] += len(src.classes)
            for name, n in per_class.items():
                counts[s]["classes"][name] += n
            files.append({"path": img_rel.as_posix(), "label": lbl_rel.as_posix(), "sha256": src.sha256,
                          "split": s, "group": src.group.split(":", 1)[1], "source": str(src.image),
                          "classes": dict(per_class)})
        for s in SPLIT_NAMES:  # Ultralytics wants every listed folder to exist, even if empty
            (tmp / "images" / s).mkdir(parents=True, exist_ok=True)
            (tmp / "labels" / s).mkdir(parents=True, exist_ok=True)
        doc = {
            # No 'path:' key: Ultralytics then resolves the splits against this file's folder,
            # so the dataset keeps working after it is moved or copied.
            "train": "images/train", "val": "images/val", "test": "images/test",
            "nc": len(class_names), "names": dict(enumerate(class_names)),
        }
        header = (f"# Written by `marauder organize` from {source_images}\n"
                  f"# split {' '.join(f'{f:g}' for f in fractions)}, seed {seed}, groups by {group_rule}, "
                  f"names from {names_from}\n")
        atomic_write_text(tmp / DATASET_YAML, header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
        for name, text in (extra_files or {}).items():
            atomic_write_text(tmp / name, text)
        atomic_write_json(tmp / MANIFEST, {
            "version": 1,
            "created_by": "marauder organize",
            "fingerprint": fingerprint,
            "source_images": str(source_images.resolve()),
            "source_labels": str(source_labels.resolve()),
            "names": class_names,
            "names_from": names_from,
            "split_fractions": list(fractions),
            "seed": seed,
            "group_by": group_rule,
            "link": link,
            "counts": counts,
            "skipped": [str(i) for i in skipped],
            "files": files,
        })
    warnings += rare_class_notes(counts, fractions)
    for w in warnings:
        log.warning(w)
    return OrganizeResult(output, output / DATASET_YAML, output / MANIFEST, class_names, counts, skipped,
                          warnings)
