"""`import-annotations --merge`: add vendor-labelled images to data/organized (train split).

The organised dataset's manifest.json gets a new version; the one it replaces is kept as
manifests/manifest_v<N>.json, so `git diff`-style questions ("what did package X add?") stay
answerable. All checks run before anything is staged, and the merge is part of the import's
transaction (marauder.journal): a kill leaves either the old dataset or, after the rerun, the new one.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..errors import DataError, MissingInputError
from ..formats.yolo import crowd_label_path
from ..fsio import sha256_file
from ..journal import Transaction
from ..workspace import Workspace
from .vendor_coco import normalize_name


def _load_manifest(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # ValueError: bad JSON or bad UTF-8
        raise DataError(f"unreadable dataset manifest ({exc})", file=str(path)) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("files", []), list):
        raise DataError("dataset manifest is not a marauder manifest (no 'files' list)", file=str(path))
    return doc


def merge_into_organized(workspace: Workspace, package_id: str, package_path: Path, class_names: list[str],
                         items: list[tuple[str, bytes, str, str, str]], txn: Transaction) -> tuple[Path, int]:
    """Adds the merge to `txn` (committed by the caller with the import). items: (file name, image bytes,
    sha256, label text, crowd-region label text). Returns (manifest path, the version it will have): the
    current one when the package is already merged with these very files (a re-import is a no-op)."""
    from ..data.dataset import load_dataset_yaml

    root = workspace.organized_dir
    manifest_path = root / "manifest.json"
    if not workspace.dataset_yaml.is_file() or not manifest_path.is_file():
        raise MissingInputError(workspace.dataset_yaml if not workspace.dataset_yaml.is_file() else manifest_path,
                                "marauder organize")
    names = load_dataset_yaml(workspace.dataset_yaml).names
    if [normalize_name(n) for n in names] != [normalize_name(n) for n in class_names]:
        raise DataError(f"dataset classes {names} differ from the package's {class_names}; cannot merge",
                        file=str(workspace.dataset_yaml))
    manifest = _load_manifest(manifest_path)
    version = int(manifest.get("version", 1))
    images_dir, labels_dir = workspace.organized_images("train"), workspace.organized_labels("train")

    pending = len(txn.writes) + len(txn.deletes)
    for name, data, sha, label, crowd in items:
        img_dest = images_dir / name
        if img_dest.exists() and sha256_file(img_dest) != sha:
            raise DataError("a different image with this name is already in the train split", file=str(img_dest))
        if not img_dest.exists():
            txn.write(img_dest, data)
        label_dest = labels_dir / Path(name).with_suffix(".txt")
        txn.write(label_dest, label.encode("utf-8"))
        if crowd:
            txn.write(crowd_label_path(label_dest), crowd.encode("utf-8"))
        else:  # answered again without crowd regions: the earlier answer's go
            txn.delete(crowd_label_path(label_dest))
    merged_before = manifest.get("merged_packages", [])
    if package_id in merged_before and len(txn.writes) + len(txn.deletes) == pending:
        return manifest_path, version  # the same answer merged again: nothing changes

    history = root / "manifests"
    previous = history / f"manifest_v{version}.json"
    if not previous.exists():
        txn.write(previous, manifest_path.read_bytes())
    files = [f for f in manifest.get("files", []) if f.get("path") not in {f"images/train/{n}" for n, *_ in items}]
    for name, _data, sha, label, _crowd in items:
        classes: dict[str, int] = {}
        for line in label.splitlines():
            cname = class_names[int(line.split()[0])]
            classes[cname] = classes.get(cname, 0) + 1
        files.append({"path": f"images/train/{name}", "label": f"labels/train/{Path(name).stem}.txt",
                      "sha256": sha, "split": "train", "group": f"active:{package_id}",
                      "source": f"{package_path}!images/{name}", "classes": classes})
    new = dict(manifest)
    new.update({
        "version": version + 1,
        "files": files,
        "previous_version": previous.relative_to(root).as_posix(),
        # a changed fingerprint makes `marauder organize` refuse to silently overwrite merged labels
        "fingerprint": hashlib.sha256(f"{manifest.get('fingerprint')}+{package_id}".encode()).hexdigest(),
        "merged_packages": merged_before if package_id in merged_before else [*merged_before, package_id],
        "counts": _recount(files, class_names),
    })
    text = (json.dumps(new, indent=2) + "\n").encode("utf-8")
    txn.write(history / f"manifest_v{version + 1}.json", text)
    txn.write(manifest_path, text)  # last in the plan: the manifest moves only once its files are in place
    return manifest_path, version + 1


def _recount(files: list[dict], class_names: list[str]) -> dict:
    """Per split: images, boxes, distinct groups and boxes per class (the organizer's shape)."""
    counts = {s: {"images": 0, "boxes": 0, "groups": 0, "classes": dict.fromkeys(class_names, 0)}
              for s in ("train", "val", "test")}
    groups: dict[str, set] = {s: set() for s in counts}
    for f in files:
        split = f.get("split", "train")
        c = counts.setdefault(split, {"images": 0, "boxes": 0, "groups": 0, "classes": {}})
        groups.setdefault(split, set()).add(f.get("group"))
        c["images"] += 1
        for name, n in (f.get("classes") or {}).items():
            c["boxes"] += n
            c["classes"][name] = c["classes"].get(name, 0) + n
    for split, members in groups.items():
        counts[split]["groups"] = len(members)
    return counts
