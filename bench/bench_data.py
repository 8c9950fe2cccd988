"""Data stage benchmarks: sample speed, split quality vs scikit-learn, validation speed vs Ultralytics.

- sample: seconds to write the default embedded sample (target < 3 s).
- organize: on deepfish-det grouped by habitat (vs sklearn GroupShuffleSplit, the usual recipe) and on
  underwater-det, 7 classes, no groups (vs sklearn train_test_split): leaked groups, worst deviation
  of a split's image share from its fraction, and classes missing from a split.
- validate: seconds to check every image and label of underwater-det, vs Ultralytics'
  own per-file checker (ultralytics.data.utils.verify_image_label) over the same files.
"""

from __future__ import annotations

import csv
import os
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import SHARED_DATA, Timer, row, write_result  # noqa: E402

FRACTIONS = (0.7, 0.15, 0.15)
SPLITS = ("train", "val", "test")


def _labels_of(labels_dir: Path, stem: str) -> list[int]:
    p = labels_dir / f"{stem}.txt"
    return [int(line.split()[0]) for line in p.read_text().splitlines() if line.strip()] if p.exists() else []


def _quality(assign: dict[str, str], groups: dict[str, str], classes: dict[str, list[int]], nc: int):
    leaks = sum(len({assign[f] for f in files}) > 1 for files in _by_group(groups).values())
    n = len(assign)
    share = Counter(assign.values())
    worst = max(abs(share[s] / n - f) for s, f in zip(SPLITS, FRACTIONS))
    present = defaultdict(set)
    for f, s in assign.items():
        present[s].update(classes[f])
    missing = sum(nc - len(present[s]) for s in SPLITS)
    return leaks, round(worst, 4), missing


def _by_group(groups: dict[str, str]) -> dict[str, list[str]]:
    out = defaultdict(list)
    for f, g in groups.items():
        out[g].append(f)
    return out


def _sklearn_split(files: list[str], groups: dict[str, str] | None, seed: int = 0) -> dict[str, str]:
    from sklearn.model_selection import GroupShuffleSplit, train_test_split

    test_share = FRACTIONS[1] + FRACTIONS[2]
    if groups is None:
        train, rest = train_test_split(files, test_size=test_share, random_state=seed)
        val, test = train_test_split(rest, test_size=FRACTIONS[2] / test_share, random_state=seed)
    else:
        g = [groups[f] for f in files]
        tr, rs = next(GroupShuffleSplit(1, test_size=test_share, random_state=seed).split(files, groups=g))
        rest = [files[i] for i in rs]
        va, te = next(GroupShuffleSplit(1, test_size=FRACTIONS[2] / test_share, random_state=seed).split(
            rest, groups=[groups[f] for f in rest]))
        train, val, test = [files[i] for i in tr], [rest[i] for i in va], [rest[i] for i in te]
    return {**dict.fromkeys(train, "train"), **dict.fromkeys(val, "val"), **dict.fromkeys(test, "test")}


def bench_organize(rows: list[dict], name: str, group_by: str | None, tmp: Path) -> None:
    import json

    from marauder.data.organize import organize_dataset

    src = SHARED_DATA / name
    nc = len((src / "classes.txt").read_text().split())
    files = sorted(p.name for p in (src / "images").glob("*.jpg"))
    classes = {f: _labels_of(src / "labels", Path(f).stem) for f in files}
    groups = None
    if group_by:
        with open(src / "source_map.csv", newline="") as fh:
            groups = {r["file_name"]: r["habitat"] for r in csv.DictReader(fh)}
    with Timer() as t:
        organize_dataset(src / "images", src / "labels", tmp / name, split=FRACTIONS, seed=0, group_by=group_by,
                         show_progress=False)
    manifest = json.loads((tmp / name / "manifest.json").read_text())
    ours = {Path(f["path"]).name: f["split"] for f in manifest["files"]}
    peer = _sklearn_split(files, groups)
    g = groups or {f: f for f in files}
    o, p = _quality(ours, g, classes, nc), _quality(peer, g, classes, nc)
    peer_name = "sklearn GroupShuffleSplit" if groups else "sklearn train_test_split"
    rows += [
        row(f"{name}: groups in two splits", o[0], p[0], peer_name, "groups", "0", higher_is_better=False),
        row(f"{name}: worst split share error", o[1], p[1], peer_name, "fraction", "", higher_is_better=False),
        row(f"{name}: classes missing from a split", o[2], p[2], peer_name, "class-splits", "0",
            higher_is_better=False),
        row(f"{name}: organize time (check + copy {len(files)} images)", round(t.seconds, 2), units="s",
            higher_is_better=False),
    ]


def bench_validate(rows: list[dict], name: str) -> None:
    from ultralytics.data.utils import verify_image_label

    from marauder.data.validate import validate_dataset

    src = SHARED_DATA / name
    nc = len((src / "classes.txt").read_text().split())
    with Timer() as ours:
        report = validate_dataset(src, show_progress=False)
    images = sorted((src / "images").glob("*.jpg"))
    with Timer() as peer:
        for im in images:
            verify_image_label((str(im), str(src / "labels" / f"{im.stem}.txt"), "", False, nc, 0, 0, False))
    rows.append(row(f"{name}: validate {len(images)} images + labels", round(ours.seconds, 3),
                    round(peer.seconds, 3), "ultralytics verify_image_label", "s",
                    notes=f"ours also hashes every image for cross-split duplicates; {len(report.issues)} issues",
                    higher_is_better=False))


def main() -> int:
    from marauder.data.sample import generate_sample

    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        times = []
        for i in range(3):
            with Timer() as t:
                generate_sample(tmp / f"sample{i}", seed=i)
            times.append(t.seconds)
        rows.append(row("sample: default (96 + 48 images, 160x120)", round(min(times), 3), units="s",
                        target="< 3 s", notes=f"best of 3: {[round(x, 2) for x in times]}", higher_is_better=False))
        if SHARED_DATA.is_dir():
            bench_organize(rows, "deepfish-det", "deepfish_([0-9]+)_", tmp)
            bench_organize(rows, "underwater-det", None, tmp)
            bench_validate(rows, "underwater-det")
    write_result("data", __doc__.splitlines()[0], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
