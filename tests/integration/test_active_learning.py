"""Active learning end to end on the embedded sample: select + export with the real tiny model, then a
simulated vendor round trip (add, delete, move, relabel, bad boxes, unknown image) through the CLI and
the guide's Python snippet, with every label, report line and QA-diff line checked."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from marauder.active.package import write_package
from marauder.active.selection import Candidate
from marauder.cli import main
from marauder.formats.yolo import read_labels, rows_to_ground_truth
from marauder.types import Detections, box_iou

REPO = Path(__file__).resolve().parents[2]
CLASSES = ["lionfish", "purple_sea_urchin", "abalone", "sea_star", "rockfish"]
W, H = 160, 120  # sample image size


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------------------
# Selection and export with the real model
# ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def al_workspace(tmp_path_factory, sample_dir, organized_sample, tiny_model):
    ws = tmp_path_factory.mktemp("al_ws")
    (ws / "checkpoints" / "baseline").mkdir(parents=True)
    shutil.copy(tiny_model, ws / "checkpoints" / "baseline" / "best.pt")
    pool = ws / "data" / "marauder" / "images"
    pool.mkdir(parents=True)
    for p in sorted((sample_dir / "unlabelled" / "images").glob("*.jpg"))[:14]:
        shutil.copy(p, pool / p.name)
    # an already-labelled image hiding in the pool under another name must never be sent again
    labelled = sorted((organized_sample / "images" / "train").rglob("*.jpg"))[0]
    shutil.copy(labelled, pool / "zz_copy_of_labelled.jpg")
    shutil.copytree(organized_sample, ws / "data" / "organized")
    cfg = yaml.safe_load((REPO / "config" / "training_config.yaml").read_text())
    cfg["general"].update(imgsz=64, device="cpu")
    # the 2-epoch model is unsure of everything: a wide band keeps its boxes in play
    cfg["active_learning"].update(num_samples=5, batch_size=8, min_confidence=0.0005, max_confidence=0.5,
                                  pre_annotation_confidence=0.002, candidate_factor=2.0, diversity=False)
    (ws / "config").mkdir()
    (ws / "config" / "training_config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return ws


@pytest.fixture(scope="module")
def first_package(al_workspace):
    assert main(["active-learn", "--workspace", str(al_workspace)]) == 0
    archived = al_workspace / "outputs" / "active_learning" / "packages"
    (zip_path,) = archived.glob("pkg-*.zip")
    return zip_path


def read_zip(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def test_package_contents(al_workspace, first_package):
    files = read_zip(al_workspace / "outputs" / "active_learning" / "annotation_package.zip")
    assert files == read_zip(first_package)
    meta = json.loads(files["package.json"])
    coco = json.loads(files["annotations.json"])
    manifest = list(csv.DictReader(io.StringIO(files["manifest.csv"].decode())))
    assert first_package.stem == meta["package_id"] == coco["info"]["package_id"]
    assert meta["classes"] == CLASSES and meta["n_images"] == 5 and meta["strategy"] == "uncertainty_sampling"
    assert [c["name"] for c in coco["categories"]] == CLASSES
    assert [c["id"] for c in coco["categories"]] == [1, 2, 3, 4, 5]
    assert len(manifest) == len(coco["images"]) == 5
    scores = [float(r["score"]) for r in manifest]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0
    pool_hashes = {sha(p.read_bytes()): p for p in (al_workspace / "data" / "marauder" / "images").glob("*.jpg")}
    for row, img in zip(manifest, coco["images"]):
        data = files[row["file"]]
        assert sha(data) == row["sha256"] == img["sha256"]
        assert pool_hashes[row["sha256"]].name != "zz_copy_of_labelled.jpg"
        assert row["source"] == "data/marauder/images" and row["original"].startswith("data/marauder/images/")
        assert (int(row["width"]), int(row["height"])) == (img["width"], img["height"]) == (W, H)
        assert img["file_name"] == row["file"] and int(row["image_id"]) == img["id"]
        assert "thumbnails/" + Path(row["file"]).stem + ".jpg" in files
    for ann in coco["annotations"]:
        assert ann["score"] >= 0.002 and 1 <= ann["category_id"] <= 5
        x, y, w, h = ann["bbox"]
        assert 0 <= x and 0 <= y and x + w <= W + 0.01 and y + h <= H + 0.01 and w > 0 and h > 0
    md = files["guidelines/GUIDELINES.md"].decode()
    html = files["guidelines/guidelines.html"].decode()
    for name in CLASSES:
        assert name in md and name in html
        if f"guidelines/examples/{name}.jpg" in files:
            assert f"examples/{name}.jpg" in md and f'src="examples/{name}.jpg"' in html
    assert sum(f"guidelines/examples/{n}.jpg" in files for n in CLASSES) >= 3
    assert "Draw one tight axis-aligned box" in md and "<ol>" in html
    selection = json.loads((al_workspace / "outputs" / "active_learning" / "selection.json").read_text())
    assert selection["pool"] == {"listed": 15, "scored": 14, "excluded": 1, "duplicates": 0, "unreadable": 0}
    scored = list(csv.DictReader((al_workspace / "outputs" / "active_learning" / "scores.csv").open()))
    assert len(scored) == 14
    top5 = sorted(scored, key=lambda r: -float(r["score"]))[:5]
    assert {r["sha256"] for r in top5} == {r["sha256"] for r in manifest}  # diversity off: pure top-k
    assert (al_workspace / "logs" / "3_active_learning.log").is_file()


def test_second_round_skips_images_already_sent(al_workspace, first_package):
    first = {r["sha256"] for r in csv.DictReader(io.StringIO(read_zip(first_package)["manifest.csv"].decode()))}
    assert main(["active-learn", "--workspace", str(al_workspace), "active_learning.diversity=true",
                 "active_learning.strategy=entropy"]) == 0
    files = read_zip(al_workspace / "outputs" / "active_learning" / "annotation_package.zip")
    second = {r["sha256"] for r in csv.DictReader(io.StringIO(files["manifest.csv"].decode()))}
    assert len(second) == 5 and not first & second
    ledger = list(csv.DictReader((al_workspace / "outputs" / "active_learning" / "ledger.csv").open()))
    assert len(ledger) == 10 and {r["sha256"] for r in ledger} == first | second
    assert len({r["package_id"] for r in ledger}) == 2


def test_missing_model_names_the_command(tmp_path, capsys):
    assert main(["active-learn", "--workspace", str(tmp_path)]) == 2
    err = capsys.readouterr().err.replace("\n", "")
    assert "checkpoints/baseline/best.pt not found: run `marauder train-baseline` first" in err


def test_guide_python_snippet_imports_vendor_file(al_workspace, first_package):
    """The guide's `python -c` block, verbatim but for the file path, run as a real subprocess."""
    coco = json.loads(read_zip(first_package)["annotations.json"])
    vendor = {"info": coco["info"], "images": coco["images"],
              "categories": [{"id": 42, "name": "  LIONFISH "}, {"id": 7, "name": "Sea Star"}],
              "annotations": [{"id": i + 1, "image_id": im["id"], "category_id": 42 if i % 2 else 7,
                               "bbox": [10, 20, 40, 30]} for i, im in enumerate(coco["images"])]}
    vendor_path = al_workspace / "from_vendor" / "annotations.json"
    vendor_path.parent.mkdir()
    vendor_path.write_text(json.dumps(vendor))
    snippet = ("\nfrom data.active_learning.mindy_services_handler import MindyServicesHandler\n"
               "handler = MindyServicesHandler('config/training_config.yaml')\n"
               "handler.import_annotations(\n    'path/to/annotations.json',\n    'data/annotated/labels'\n)\n")
    snippet = snippet.replace("path/to/annotations.json", "from_vendor/annotations.json")
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # the guide runs from the repo root; here the workspace is cwd
    proc = subprocess.run([sys.executable, "-c", snippet], cwd=al_workspace, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    labels_dir = al_workspace / "data" / "annotated" / "labels"
    images_dir = al_workspace / "data" / "annotated" / "images"
    assert len(list(labels_dir.glob("*.txt"))) == 5
    for i, im in enumerate(coco["images"]):
        stem = Path(im["file_name"]).stem
        cls = 0 if i % 2 else 3
        assert (labels_dir / f"{stem}.txt").read_text() == f"{cls} 0.187500 0.291667 0.250000 0.250000\n"
        assert sha((images_dir / f"{stem}.jpg").read_bytes()) == im["sha256"]


def test_guide_import_path_resolves_from_repo_root():
    proc = subprocess.run(
        [sys.executable, "-c", "from data.active_learning.mindy_services_handler import MindyServicesHandler;"
                               "print(MindyServicesHandler.import_annotations.__qualname__)"],
        cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "MindyServicesHandler.import_annotations"


# ---------------------------------------------------------------------------------------------------
# The vendor round trip with known pre-annotations (labelled sample images stand in for model output)
# ---------------------------------------------------------------------------------------------------

def gt_boxes(organized: Path, image: Path):
    rel = image.relative_to(organized / "images")
    gt = rows_to_ground_truth(read_labels(organized / "labels" / rel.with_suffix(".txt")), (H, W))
    return [(int(c), tuple(float(v) for v in b)) for c, b in zip(gt.class_ids, gt.xyxy)]


def free_spot(boxes, size=12.0):
    """A size x size box that overlaps none of `boxes` (so the QA diff must call it 'added')."""
    for y in range(0, H - int(size), 4):
        for x in range(0, W - int(size) - 8, 4):
            cand = np.array([[x, y, x + size, y + size]], dtype=float)
            if not boxes or box_iou(cand, np.array([b for _, b in boxes])).max() == 0:
                return (float(x), float(y), x + size, y + size)
    raise AssertionError("no free spot")


@pytest.fixture(scope="module")
def roundtrip(tmp_path_factory, organized_sample):
    ws = tmp_path_factory.mktemp("roundtrip_ws")
    shutil.copytree(organized_sample, ws / "data" / "organized")
    images = [p for p in sorted((organized_sample / "images").rglob("*.jpg"))
              if p.parts[-2] in ("val", "test") and gt_boxes(organized_sample, p)][:6]
    assert len(images) == 6
    cands = []
    for p in images:
        boxes = gt_boxes(organized_sample, p)
        d = Detections([b for _, b in boxes], [0.5] * len(boxes), [c for c, _ in boxes], (H, W))
        cands.append(Candidate(str(p), "pool", sha(p.read_bytes()), 1.0, d))
    pkg = write_package(ws / "outputs" / "active_learning" / "annotation_package.zip", "pkg-test-0001", cands,
                        CLASSES, crops={}, pre_annotation_confidence=0.25, thumbnail_size=64,
                        metadata={"created_at": "now"})
    pre = [gt_boxes(organized_sample, p) for p in images]

    # --- the vendor's answer -------------------------------------------------------------------
    # vendor category ids differ from ours; names differ in case and spacing
    vcat = {name: 100 + i for i, name in enumerate(reversed(CLASSES))}
    vendor_names = {vcat[n]: n.replace("_", " ").title() + ("  " if i % 2 else "") for i, n in enumerate(CLASSES)}
    anns, expected, plan = [], {}, []

    def add(image_id, cls, xyxy):
        x1, y1, x2, y2 = xyxy
        anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": vcat[CLASSES[cls]],
                     "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
        return len(anns) - 1

    for k in range(5):  # image ids 1..5 are returned; id 6 is "forgotten" by the vendor
        boxes = [list(b) for b in pre[k]]
        after = []
        for j, (cls, box) in enumerate(boxes):
            if k == 1 and j == 0:
                plan.append(("deleted", CLASSES[cls], ""))
                continue
            if k == 2 and j == 0:
                w = box[2] - box[0]
                box = (box[0] + 0.2 * w, box[1], box[2] + 0.2 * w, box[3])
                plan.append(("moved", CLASSES[cls], CLASSES[cls]))
            elif k == 3 and j == 0:
                new = (cls + 1) % 5
                plan.append(("relabelled", CLASSES[cls], CLASSES[new]))
                cls = new
            else:
                plan.append(("unchanged", CLASSES[cls], CLASSES[cls]))
            add(k + 1, cls, box)
            after.append((cls, box))
        if k == 4:
            spot = free_spot(pre[k])
            add(k + 1, 2, spot)
            after.append((2, spot))
            plan.append(("added", "", "abalone"))
        expected[k + 1] = after
    # a box hanging 1% over the right edge of image 1 is clipped; it is new to the model ('added')
    edge_y = next(y for y in range(0, H - 10, 2) if all(b[3] <= y or b[1] >= y + 10 or b[2] < W - 30
                                                       for _, b in pre[0]))
    clipped_item = add(1, 4, (W - 12, edge_y, W + 1.5, edge_y + 10))
    expected[1].append((4, (W - 12, edge_y, W, edge_y + 10)))
    plan.append(("added", "", "rockfish"))
    bad_item = add(1, 0, (150, 100, 210, 160))  # planted: far outside the 160x120 image
    zero_item = add(2, 0, (30, 30, 30, 50))  # planted: zero width
    ghost_item = add(999, 0, (1, 1, 10, 10))  # box on an image the package never had
    vendor = {
        "info": {"package_id": "pkg-test-0001", "contributor": "Mindy Services"},
        "images": [{"id": i + 1, "file_name": Path(e.file).name, "width": W, "height": H}
                   for i, e in enumerate(pkg.entries[:5])] + [{"id": 999, "file_name": "ghost.jpg"}],
        "categories": [{"id": c, "name": n} for c, n in vendor_names.items()],
        "annotations": anns,
    }
    vendor_path = ws / "vendor" / "annotations.json"
    vendor_path.parent.mkdir()
    vendor_path.write_text(json.dumps(vendor))
    return {"ws": ws, "pkg": pkg, "vendor": vendor, "vendor_path": vendor_path, "expected": expected,
            "plan": plan, "items": {"clipped": clipped_item, "bad": bad_item, "zero": zero_item,
                                    "ghost": ghost_item}}


def run_import(ws, *args):
    return main(["import-annotations", *map(str, args), "--workspace", str(ws)])


def test_strict_import_writes_nothing(roundtrip, capsys):
    ws = roundtrip["ws"]
    assert run_import(ws, roundtrip["vendor_path"], "--strict", "--output", "strict/labels") == 2
    err = capsys.readouterr().err.replace("\n", "")
    assert "4 item(s) rejected (first: images[5] (id 999): unknown image id 999" in err
    assert not (ws / "strict").exists()


def test_roundtrip_labels_report_and_qa_diff(roundtrip):
    ws, pkg, items = roundtrip["ws"], roundtrip["pkg"], roundtrip["items"]
    assert run_import(ws, roundtrip["vendor_path"]) == 0
    labels_dir = ws / "data" / "annotated" / "labels"
    images_dir = ws / "data" / "annotated" / "images"

    # every label: exactly the vendor's accepted boxes, in YOLO form
    assert sorted(p.name for p in labels_dir.iterdir()) == sorted(Path(e.file).stem + ".txt"
                                                                   for e in pkg.entries[:5])
    for image_id, boxes in roundtrip["expected"].items():
        entry = pkg.entries[image_id - 1]
        rows = read_labels(labels_dir / (Path(entry.file).stem + ".txt"), num_classes=5)
        want = [[c, (b[0] + b[2]) / 2 / W, (b[1] + b[3]) / 2 / H, (b[2] - b[0]) / W, (b[3] - b[1]) / H]
                for c, b in boxes]
        np.testing.assert_allclose(rows, np.array(want).reshape(-1, 5), atol=2e-6)
        assert sha((images_dir / Path(entry.file).name).read_bytes()) == entry.sha256

    # every line of the import report
    report_dir = ws / "outputs" / "active_learning" / "imports" / "pkg-test-0001"
    report = json.loads((report_dir / "import_report.json").read_text())
    n_boxes = sum(len(b) for b in roundtrip["expected"].values())
    n_empty = sum(not b for b in roundtrip["expected"].values())  # e.g. the vendor deleted an image's only box
    assert (report["imported_images"], report["imported_boxes"], report["empty_images"]) == (5, n_boxes, n_empty)
    f1, f2 = Path(pkg.entries[0].file).name, Path(pkg.entries[1].file).name
    bad, zero, ghost = (f"annotations[{items[k]}] (id {items[k] + 1})" for k in ("bad", "zero", "ghost"))
    assert report["rejected"] == [
        {"item": "images[5] (id 999)", "image": "ghost.jpg", "reason": "unknown image id 999: not in the package"},
        {"item": bad, "image": pkg.entries[0].file,
         "reason": "box [150, 100, 210, 160] lies outside the 160x120 image by more than the 2% tolerance"},
        {"item": zero, "image": pkg.entries[1].file, "reason": "zero-area box (w=0, h=20)"},
        {"item": ghost, "image": "", "reason": "belongs to rejected image id 999"},
    ]
    clipped = f"annotations[{items['clipped']}] (id {items['clipped'] + 1})"
    assert [c["item"] for c in report["clipped"]] == [clipped]
    assert report["missing_images"] == [pkg.entries[5].file]
    assert report["unknown_categories"] == {}
    assert sorted(report["category_mapping"].values()) == sorted(CLASSES)
    md = (report_dir / "import_report.md").read_text().splitlines()
    assert [line for line in md if line.startswith("- REJECTED")] == [
        f"- REJECTED {r['item']} [{r['image'] or '-'}]: {r['reason']}" for r in report["rejected"]]
    assert [line for line in md if line.startswith("- MISSING")] == [f"- MISSING {pkg.entries[5].file}"]
    assert [line.split(" -> ")[0] for line in md if line.startswith("- CLIPPED")] == [f"- CLIPPED {clipped}"]
    assert f1 and f2

    # every line of the QA diff
    qa = json.loads((report_dir / "qa_diff.json").read_text())
    want_table = {c: dict.fromkeys(["added", "deleted", "moved", "relabelled", "unchanged"], 0) for c in CLASSES}
    for change, before, after in roundtrip["plan"]:
        want_table[before if change == "deleted" else after][change] += 1
    assert qa["per_class"] == want_table
    relabel = next((b, a) for c, b, a in roundtrip["plan"] if c == "relabelled")
    assert qa["relabelled_pairs"] == {f"{relabel[0]} -> {relabel[1]}": 1}
    rows = list(csv.DictReader((report_dir / "qa_diff.csv").open()))
    assert sorted((r["change"], r["class_before"], r["class_after"]) for r in rows) == sorted(roundtrip["plan"])
    moved = next(r for r in rows if r["change"] == "moved")
    assert 0.3 <= float(moved["iou"]) < 0.9 and math.isclose(float(moved["iou"]), 0.8 / 1.2, abs_tol=2e-3)
    table_lines = [line for line in (report_dir / "qa_diff.md").read_text().splitlines() if line.startswith("| ")]
    assert table_lines[1:] == [
        f"| {c} | " + " | ".join(str(want_table[c][k]) for k in ["added", "deleted", "moved", "relabelled",
                                                                   "unchanged"]) + " |" for c in CLASSES]
    assert (report_dir / "qa_diff.png").stat().st_size > 1000


def test_merge_adds_train_images_and_new_manifest_version(roundtrip):
    ws, pkg = roundtrip["ws"], roundtrip["pkg"]
    organized = ws / "data" / "organized"
    old_manifest = (organized / "manifest.json").read_text()
    old_train = len(list((organized / "images" / "train").rglob("*.jpg")))
    assert run_import(ws, roundtrip["vendor_path"], "--merge", "--output", "merged/labels") == 0
    new = json.loads((organized / "manifest.json").read_text())
    assert new["version"] == 2 and new["previous_version"] == "manifests/manifest_v1.json"
    assert (organized / "manifests" / "manifest_v1.json").read_text() == old_manifest
    assert json.loads((organized / "manifests" / "manifest_v2.json").read_text()) == new
    assert new["merged_packages"] == ["pkg-test-0001"]
    assert len(list((organized / "images" / "train").rglob("*.jpg"))) == old_train + 5
    added = [f for f in new["files"] if f["group"] == "active:pkg-test-0001"]
    assert len(added) == 5 and all(f["split"] == "train" for f in added)
    for e in pkg.entries[:5]:
        name = Path(e.file).name
        assert sha((organized / "images" / "train" / name).read_bytes()) == e.sha256
        assert (organized / "labels" / "train" / (Path(name).stem + ".txt")).read_text() == \
            (ws / "merged" / "labels" / (Path(name).stem + ".txt")).read_text()
    assert new["counts"]["train"]["images"] == json.loads(old_manifest)["counts"]["train"]["images"] + 5


def test_crowd_regions_are_kept_apart_through_import_and_merge(roundtrip, tmp_path):
    """iscrowd 1 boxes: not training labels (as Ultralytics' COCO converter), but a crowd file beside the
    label that the evaluator reads; a later answer without them clears them."""
    from marauder.data.dataset import read_ground_truth

    ws = tmp_path / "ws"
    shutil.copytree(roundtrip["ws"] / "data" / "organized", ws / "data" / "organized")
    shutil.copytree(roundtrip["ws"] / "outputs", ws / "outputs")
    vendor = json.loads(json.dumps(roundtrip["vendor"]))
    school = {"id": 5000, "image_id": 3, "category_id": vendor["annotations"][0]["category_id"],
              "bbox": [10.0, 10.0, 60.0, 40.0], "area": 2400.0, "iscrowd": 1}
    vendor["annotations"].append(school)
    path = tmp_path / "with_crowd.json"
    path.write_text(json.dumps(vendor))
    assert run_import(ws, path, "--merge") == 0

    stem = Path(roundtrip["pkg"].entries[2].file).stem
    annotated = ws / "data" / "annotated" / "labels"
    plain = roundtrip["expected"][3]
    assert len(read_labels(annotated / f"{stem}.txt", num_classes=5)) == len(plain)  # no crowd row there
    crowd_rows = read_labels(annotated / f"{stem}.crowd.txt", num_classes=5)
    np.testing.assert_allclose(crowd_rows[0, 1:], [40 / W, 30 / H, 60 / W, 40 / H], atol=2e-6)
    merged = ws / "data" / "organized" / "labels" / "train" / f"{stem}.crowd.txt"
    assert merged.read_text() == (annotated / f"{stem}.crowd.txt").read_text()
    gt = read_ground_truth(ws / "data" / "organized" / "images" / "train" / f"{stem}.jpg", num_classes=5)
    assert gt.iscrowd.sum() == 1 and len(gt.counted) == len(plain)
    assert sorted(p.name for p in annotated.iterdir() if p.name.endswith(".crowd.txt")) == [f"{stem}.crowd.txt"]

    path.write_text(json.dumps(roundtrip["vendor"]))  # answered again, without the crowd region
    assert run_import(ws, path, "--merge") == 0
    assert not (annotated / f"{stem}.crowd.txt").exists() and not merged.exists()
    gt = read_ground_truth(ws / "data" / "organized" / "images" / "train" / f"{stem}.jpg", num_classes=5)
    assert not gt.iscrowd.any()


def tree(root: Path) -> dict[str, str]:
    """Every file under the workspace (logs aside) -> its sha256 (with the workspace's own path written
    as <ws>, which reports and manifests name); symlinks and empty folders by name."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if rel.startswith(("logs", ".marauder")):
            continue
        if p.is_symlink():
            out[rel] = f"-> {os.readlink(p)}"
        elif p.is_dir():
            out.setdefault(rel + "/", "dir") if not any(p.iterdir()) else None
        else:
            out[rel] = sha(p.read_bytes().replace(str(root).encode(), b"<ws>"))
    return out


def fresh_workspace(roundtrip, dest: Path, organized: Path) -> Path:
    """The organised sample as it was before any test merged into it, and our annotation package."""
    shutil.copytree(organized, dest / "data" / "organized")
    shutil.copytree(roundtrip["ws"] / "outputs", dest / "outputs",
                    ignore=shutil.ignore_patterns("imports"))  # the package only, no earlier import
    return dest


KILLED_IMPORT = "import sys; from marauder.cli import main; sys.exit(main(sys.argv[1:]))"


def test_a_kill_at_every_write_point_then_the_same_command_ends_as_an_uninterrupted_import(roundtrip, tmp_path,
                                                                                           organized_sample):
    """SIGKILL after the N-th rename (marauder.fsio's hook), for every N the import + merge has; the rerun
    must leave the workspace byte for byte as one uninterrupted run, with no leftovers."""
    from marauder.fsio import KILL_HOOK_ENV

    want_ws = fresh_workspace(roundtrip, tmp_path / "want", organized_sample)
    assert run_import(want_ws, roundtrip["vendor_path"], "--merge") == 0
    want = tree(want_ws)
    assert not any(Path(k).name.startswith(".") for k in want)
    kills = 0
    for n in range(1, 200):
        ws = fresh_workspace(roundtrip, tmp_path / f"kill{n}", organized_sample)
        killed = subprocess.run([sys.executable, "-c", KILLED_IMPORT, "import-annotations",
                                 str(roundtrip["vendor_path"]), "--merge", "--workspace", str(ws)],
                                env={**os.environ, KILL_HOOK_ENV: str(n)}, capture_output=True, timeout=120)
        if killed.returncode == 0:
            break  # fewer than n write points: every one has been tried
        assert killed.returncode == -9, killed.stderr.decode()[-2000:]
        kills += 1
        assert run_import(ws, roundtrip["vendor_path"], "--merge") == 0
        assert tree(ws) == want, f"killed after rename {n}"
        shutil.rmtree(ws)
    assert kills >= 20  # images, labels, report, merged files and manifests: each a write point


def test_a_failed_import_keeps_the_last_good_report_and_a_same_reimport_is_a_no_op(roundtrip, tmp_path,
                                                                                   organized_sample):
    ws = fresh_workspace(roundtrip, tmp_path / "ws", organized_sample)
    assert run_import(ws, roundtrip["vendor_path"], "--merge") == 0
    report_dir = ws / "outputs" / "active_learning" / "imports" / "pkg-test-0001"
    organized = ws / "data" / "organized"
    before = tree(ws)
    assert json.loads((organized / "manifest.json").read_text())["version"] == 2

    assert run_import(ws, roundtrip["vendor_path"], "--merge") == 0  # the same answer again
    assert tree(ws) == before  # no manifest v3, the package id not appended again, nothing rewritten

    assert run_import(ws, roundtrip["vendor_path"], "--merge", "--strict") == 2
    failed = report_dir.with_name("pkg-test-0001.failed")
    assert json.loads((failed / "import_report.json").read_text())["rejected"]
    assert {k: v for k, v in tree(ws).items() if ".failed/" not in k} == before  # the good report stands
    assert run_import(ws, roundtrip["vendor_path"]) == 0 and not failed.exists()


def test_output_folder_keeps_what_the_import_does_not_own(roundtrip, tmp_path, organized_sample):
    """--output writes its files into the sibling images/ folder; a user's symlinked frame, an empty
    folder and an unrelated file there survive."""
    ws = fresh_workspace(roundtrip, tmp_path / "ws", organized_sample)
    images = ws / "mine" / "images"
    (images / "empty").mkdir(parents=True)
    frame = tmp_path / "frame.jpg"
    frame.write_bytes(b"\xff\xd8 a user's frame")
    (images / "frame.jpg").symlink_to(frame)
    (images / "notes.txt").write_text("keep me")
    assert run_import(ws, roundtrip["vendor_path"], "--output", "mine/labels") == 0
    assert (images / "frame.jpg").is_symlink() and (images / "empty").is_dir()
    assert (images / "notes.txt").read_text() == "keep me"
    assert len(list(images.glob("*.jpg"))) == 6  # the frame and the five imported images


@pytest.mark.parametrize("mutate, message", [
    (lambda v: v["annotations"][3]["bbox"].__setitem__(0, float("nan")),
     "annotations[3] (id 4): bbox[0] must be a finite number, got NaN"),
    (lambda v: v["annotations"][0].pop("image_id"), "annotations[0] (id 1): missing key 'image_id'"),
    (lambda v: v["images"][0].__setitem__("id", "1"), "images[0]: 'id' must be an integer, got str"),
    (lambda v: v.pop("categories"), "top level: missing key 'categories'"),
    (lambda v: v["annotations"][1].__setitem__("iscrowd", "yes"), "annotations[1] (id 2): 'iscrowd' must be 0 or 1"),
])
def test_malformed_vendor_file_is_one_line_error_and_writes_nothing(roundtrip, tmp_path, capsys, mutate, message):
    vendor = json.loads(json.dumps(roundtrip["vendor"]))
    mutate(vendor)
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps(vendor))
    assert run_import(roundtrip["ws"], path, "--output", tmp_path / "out" / "labels") == 2
    err = capsys.readouterr().err.replace("\n", "")
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_returned_zip_imports_and_zip_slip_is_refused(roundtrip, tmp_path, capsys):
    ws = roundtrip["ws"]
    good = tmp_path / "returned.zip"
    with zipfile.ZipFile(good, "w") as zf:
        zf.writestr("export/annotations.json", json.dumps(roundtrip["vendor"]))
        zf.writestr("export/readme.txt", "done")
    assert run_import(ws, good, "--output", tmp_path / "z" / "labels") == 0
    assert len(list((tmp_path / "z" / "labels").glob("*.txt"))) == 5
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("annotations.json", json.dumps(roundtrip["vendor"]))
        zf.writestr("../../outside.txt", "owned")
    assert run_import(ws, evil, "--output", tmp_path / "e" / "labels") == 2
    assert "unsafe entry rejected: '..' in path (zip slip)" in capsys.readouterr().err.replace("\n", "")
    assert not (tmp_path / "e").exists() and not (tmp_path.parent / "outside.txt").exists()


def test_detailed_prediction_matches_plain_and_adds_scores_and_features(tiny_model, sample_dir):
    """predict_detailed must be the same inference as predict, plus class vectors and embeddings."""
    import cv2

    from marauder.engines.ultralytics.predict import UltralyticsPredictor, predict_detailed

    images = [cv2.imread(str(p)) for p in sorted((sample_dir / "unlabelled" / "images").glob("*.jpg"))[:5]]
    predictor = UltralyticsPredictor(tiny_model, imgsz=64, conf=0.001, device="cpu", batch=4)
    plain = predictor.predict(images)
    detailed = predict_detailed(predictor, images)
    assert any(len(d) for d in plain)
    for a, b in zip(plain, detailed):
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-4)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-6)
        assert (a.class_ids == b.class_ids).all()
        if len(b):
            cs = b.extra["class_scores"]
            assert cs.shape == (len(b), 5)
            np.testing.assert_allclose(cs.max(axis=1), b.scores, atol=1e-5)
            assert (cs.argmax(axis=1) == b.class_ids).all()
        assert b.extra["embedding"].shape == detailed[0].extra["embedding"].shape and b.extra["embedding"].ndim == 1
    # the hooked features are the library's own pooled backbone embedding (last backbone layer)
    reference = predictor.model.embed(images, imgsz=64, verbose=False, embed=[9])
    np.testing.assert_allclose(np.stack([d.extra["embedding"] for d in detailed]),
                               np.stack([r.cpu().numpy() for r in reference]), rtol=1e-4, atol=1e-6)
