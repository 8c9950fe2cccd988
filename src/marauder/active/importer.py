"""`marauder import-annotations`: vendor COCO (or the zip it came in) -> YOLO labels, report, QA diff.

Order of work, so a bad file never leaves half an import behind:
  read + structure check -> find our package -> judge every image and box -> (strict: stop)
  -> (strict or nothing importable: the report goes to imports/<package>.failed, nothing else moves)
  -> images, labels, crowd regions, report and the optional merge as one transaction (marauder.journal).
"""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from ..config.sections.stages import ActiveLearningConfig
from ..errors import DataError, MissingInputError
from ..formats.yolo import crowd_label_path, format_labels, xyxy_to_rows
from ..fsio import atomic_directory, atomic_write_bytes
from ..journal import Transaction, recover
from ..log import get_logger
from ..workspace import Workspace
from .package_reader import Package, is_safe_package_id, read_package
from .qa_diff import changes_as_rows, diff_image, plot_summary, relabel_pairs, summarize
from .safezip import ZipLimits, check_zip, load_json_file, parse_json_bytes, read_member
from .select_stage import packages_dir
from .vendor_coco import CheckedImport, check_against_package, map_categories, parse_coco

log = get_logger("active.import")


@dataclass
class ImportResult:
    package_id: str
    labels_dir: Path
    images_dir: Path | None
    report_dir: Path
    imported_images: int
    imported_boxes: int
    rejected: int
    missing: int
    qa_summary: dict = field(default_factory=dict)
    merged_manifest: Path | None = None


def limits_of(cfg: ActiveLearningConfig) -> ZipLimits:
    return ZipLimits(max_total_bytes=int(cfg.max_import_mb * 2**20), max_files=cfg.max_import_files)


def read_vendor_file(path: Path, cfg: ActiveLearningConfig):
    """The vendor's COCO document, from a .json file or from the annotations.json inside a returned zip."""
    max_json = int(cfg.max_json_mb * 2**20)
    if not path.exists():
        raise DataError("annotations file not found", file=str(path))
    if not zipfile.is_zipfile(path):
        return load_json_file(path, max_json), str(path)
    infos = check_zip(path, limits_of(cfg))
    named = [i for i in infos if i.filename.replace("\\", "/").rsplit("/", 1)[-1] == "annotations.json"]
    candidates = named or [i for i in infos if i.filename.lower().endswith(".json")]
    if not candidates:
        raise DataError("the returned zip holds no annotations.json", file=str(path))
    candidates.sort(key=lambda i: (i.filename.count("/"), i.filename))
    if len(candidates) > 1 and candidates[0].filename.count("/") == candidates[1].filename.count("/"):
        raise DataError(f"the returned zip holds several COCO files ({candidates[0].filename}, "
                        f"{candidates[1].filename}); pass the one to import", file=str(path))
    info = candidates[0]
    with zipfile.ZipFile(path) as zf:
        data = read_member(zf, info, max_json)
    source = f"{path}!{info.filename}"
    return parse_json_bytes(data, source, max_json), source


def find_package(workspace: Workspace, explicit: Path | None, vendor_package_id: str | None) -> Path:
    if explicit is not None:
        if not explicit.is_file():
            raise DataError("annotation package not found", file=str(explicit))
        return explicit
    if vendor_package_id and is_safe_package_id(vendor_package_id):  # it comes from the vendor: no paths
        archived = packages_dir(workspace) / f"{vendor_package_id}.zip"
        if archived.is_file():
            return archived
    if not workspace.annotation_package.is_file():
        raise MissingInputError(workspace.annotation_package, "marauder active-learn")
    return workspace.annotation_package


def label_name(package_file: str) -> str:
    return Path(package_file).with_suffix(".txt").name


def _report_docs(package: Package, source: str, checked: CheckedImport, accepted_counts: tuple[int, int, int],
                 mapping_names: dict[str, str]) -> tuple[dict, str]:
    n_images, n_boxes, n_empty = accepted_counts
    rejected = [{"item": r.item, "image": r.image, "reason": r.reason} for r in checked.rejections]
    clipped = [{"item": a.item, "box": [round(v, 2) for v in a.xyxy]} for a in checked.clipped]
    missing = [package.images[i].file for i in checked.missing]
    doc = {
        "package_id": package.package_id, "package": str(package.path), "annotations": source,
        "imported_images": n_images, "imported_boxes": n_boxes, "empty_images": n_empty,
        "rejected": rejected, "clipped": clipped, "missing_images": missing,
        "unknown_categories": {str(k): v for k, v in checked.unknown_categories.items()},
        "category_mapping": mapping_names,
    }
    lines = [f"# Import report — package {package.package_id}", "",
             f"- annotations: `{source}`", f"- imported: {n_images} images, {n_boxes} boxes ({n_empty} images "
             "with no boxes)", f"- rejected items: {len(rejected)}", f"- boxes clipped to the image: {len(clipped)}",
             f"- package images not returned: {len(missing)}", ""]
    if rejected:
        lines += ["## Rejected", ""] + [f"- REJECTED {r['item']} [{r['image'] or '-'}]: {r['reason']}"
                                        for r in rejected] + [""]
    if clipped:
        lines += ["## Clipped", ""] + [f"- CLIPPED {c['item']} -> {c['box']}" for c in clipped] + [""]
    if missing:
        lines += ["## Not returned", ""] + [f"- MISSING {m}" for m in missing] + [""]
    return doc, "\n".join(lines)


def _qa_markdown(table: dict, pairs: dict[str, int]) -> str:
    cols = ["added", "deleted", "moved", "relabelled", "unchanged"]
    lines = ["# QA diff: vendor vs model pre-annotations", "", "| class | " + " | ".join(cols) + " |",
             "|---" * (len(cols) + 1) + "|"]
    lines += [f"| {c} | " + " | ".join(str(row[k]) for k in cols) + " |" for c, row in table.items()]
    if pairs:
        lines += ["", "Relabelled:", ""] + [f"- {k}: {v}" for k, v in sorted(pairs.items())]
    return "\n".join(lines) + "\n"


def import_annotations(cfg: ActiveLearningConfig, workspace: Workspace, annotations: str | Path, *,
                       output: str | Path | None = None, package: str | Path | None = None,
                       merge: bool = False, strict: bool = False) -> ImportResult:
    annotations = Path(annotations)
    for line in recover(workspace.root):  # a killed import or merge: finish (or undo) it first
        log.info("journal: %s", line)
    doc, source = read_vendor_file(annotations, cfg)
    coco = parse_coco(doc, source)
    vendor_pid = coco.info.get("package_id") if isinstance(coco.info.get("package_id"), str) else None
    pkg = read_package(find_package(workspace, Path(package) if package else None, vendor_pid), limits_of(cfg),
                       int(cfg.max_json_mb * 2**20))
    if vendor_pid and vendor_pid != pkg.package_id:
        raise DataError(f"annotations answer package {vendor_pid}, but {pkg.path} is package {pkg.package_id}; "
                        "pass the matching --package", file=source)
    checked = check_against_package(coco, pkg.images, pkg.class_names, cfg.category_aliases,
                                    tolerance=cfg.box_clip_tolerance, duplicate_iou=cfg.duplicate_iou)

    labels: dict[int, str] = {}
    crowds: dict[int, str] = {}  # crowd regions: their own file beside the labels (crowd_label_path)
    changes = []
    for iid, all_boxes in checked.boxes.items():
        im = pkg.images[iid]
        boxes = [b for b in all_boxes if not b.crowd]
        rows = xyxy_to_rows([b.xyxy for b in boxes], [b.class_id for b in boxes], (im.height, im.width))
        labels[iid] = format_labels(rows)
        if crowd := [b for b in all_boxes if b.crowd]:
            crowds[iid] = format_labels(xyxy_to_rows([b.xyxy for b in crowd], [b.class_id for b in crowd],
                                                     (im.height, im.width)))
        changes += diff_image(im.file, pkg.pre_annotations.get(iid, []), [(b.class_id, b.xyxy) for b in boxes],
                              pkg.class_names, cfg.match_iou, cfg.moved_iou)
    n_boxes = sum(len(b) for b in checked.boxes.values())
    n_empty = sum(1 for b in checked.boxes.values() if not b)
    mapping, _unknown = map_categories(coco.categories, pkg.class_names, cfg.category_aliases)
    mapping_names = {coco.categories[c]: pkg.class_names[i] for c, i in mapping.items()}
    report, report_md = _report_docs(pkg, source, checked, (len(labels), n_boxes, n_empty), mapping_names)
    table, pairs = summarize(changes, pkg.class_names), relabel_pairs(changes)
    qa = {"per_class": table, "relabelled_pairs": pairs,
          "totals": {k: sum(row[k] for row in table.values()) for k in next(iter(table.values()), {})}}

    report_dir = workspace.stage_outputs("import-annotations") / "imports" / pkg.package_id
    report_files = {"import_report.json": _json_bytes(report), "import_report.md": report_md.encode(),
                    "qa_diff.json": _json_bytes({**qa, "changes": changes_as_rows(changes)}),
                    "qa_diff.md": _qa_markdown(table, pairs).encode(), "qa_diff.csv": _changes_csv(changes)}
    if changes:
        png = io.BytesIO()
        plot_summary(table, png)
        report_files["qa_diff.png"] = png.getvalue()
    failed_dir = report_dir.with_name(f"{pkg.package_id}.failed")
    if (strict and checked.rejections) or not labels:
        # the last successful import's report stays as it was; this one goes beside it
        with atomic_directory(failed_dir, replace=True) as tmp:
            for name, data in report_files.items():
                atomic_write_bytes(tmp / name, data)
        first = checked.rejections[0] if checked.rejections else None
        raise DataError(f"{len(checked.rejections)} item(s) rejected (first: {first.item}: {first.reason}); "
                        f"nothing imported, see {failed_dir / 'import_report.md'}" if labels else
                        f"no image of package {pkg.package_id} could be imported; see "
                        f"{failed_dir / 'import_report.md'}", file=source)

    labels_dir = workspace.path(output) if output else workspace.annotated_labels
    images_dir = labels_dir.with_name("images") if labels_dir.name == "labels" else None
    image_bytes = _package_images(pkg, labels)
    # one transaction: images, labels, crowd regions, the report and the merge (marauder.journal);
    # only files the import writes are touched, whatever else the user keeps in these folders
    txn = Transaction(workspace.root, f"import-{pkg.package_id}")
    for i, text in labels.items():
        name = Path(pkg.images[i].file).name
        if images_dir is not None:
            txn.write(images_dir / name, image_bytes[i])
        label = labels_dir / label_name(name)
        txn.write(label, text.encode())
        if i in crowds:
            txn.write(crowd_label_path(label), crowds[i].encode())
        else:  # an image answered again without crowd regions must not keep the old answer's
            txn.delete(crowd_label_path(label))
    for name, data in report_files.items():
        txn.write(report_dir / name, data)
    for stale in report_dir.iterdir() if report_dir.is_dir() else []:
        if stale.is_file() and stale.name not in report_files:
            txn.delete(stale)

    merged = None
    if merge:
        items = [(Path(pkg.images[i].file).name, image_bytes[i], pkg.sha256[i], labels[i], crowds.get(i, ""))
                 for i in sorted(labels)]
        from .merge import merge_into_organized

        merged, version = merge_into_organized(workspace, pkg.package_id, pkg.path, pkg.class_names, items, txn)
    txn.commit()
    if failed_dir.is_dir():
        shutil.rmtree(failed_dir, ignore_errors=True)
    if merge:
        log.info("merged %d images into %s (dataset manifest version %d)", len(items),
                 workspace.organized_images("train"), version)
    log.info("imported %d images / %d boxes from package %s into %s; %d rejected, %d not returned; report %s",
             len(labels), n_boxes, pkg.package_id, labels_dir, len(checked.rejections), len(checked.missing),
             report_dir)
    return ImportResult(pkg.package_id, labels_dir, images_dir, report_dir, len(labels), n_boxes,
                        len(checked.rejections), len(checked.missing), qa, merged)


def _package_images(pkg: Package, wanted) -> dict[int, bytes]:
    """Image bytes from our package, checked against the manifest's SHA-256."""
    import hashlib

    out = {}
    with zipfile.ZipFile(pkg.path) as zf:
        for iid in wanted:
            info = pkg.members[pkg.images[iid].file]
            data = read_member(zf, info, info.file_size)
            if hashlib.sha256(data).hexdigest() != pkg.sha256[iid]:
                raise DataError("image does not match its manifest checksum (package altered?)",
                                file=f"{pkg.path}!{info.filename}")
            out[iid] = data
    return out


def _json_bytes(obj) -> bytes:
    return (json.dumps(obj, indent=2) + "\n").encode()


def _changes_csv(changes) -> bytes:
    import csv

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["image", "change", "class_before", "class_after", "iou", "box_before", "box_after"])
    for c in changes:
        w.writerow([c.image, c.change, c.class_before, c.class_after, f"{c.iou:.4f}",
                    " ".join(map(str, c.box_before)), " ".join(map(str, c.box_after))])
    return buf.getvalue().encode()
