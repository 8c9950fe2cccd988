"""`marauder import-annotations`: turn a vendor's COCO file into YOLO labels, with a report and QA diff."""

from __future__ import annotations

from pathlib import Path

HELP = "import vendor annotations (COCO .json or returned .zip) as YOLO labels, with an import report and QA diff"


def add_arguments(parser) -> None:
    parser.add_argument("annotations", type=Path, help="the vendor's annotations.json, or the zip they returned")
    parser.add_argument("--output", type=Path, default=None,
                        help="labels folder (default data/annotated/labels; images go to its sibling images/)")
    parser.add_argument("--package", type=Path, default=None,
                        help="the package these annotations answer (default: found by the package id in the "
                             "file, else outputs/active_learning/annotation_package.zip)")
    parser.add_argument("--merge", action="store_true",
                        help="also add the images to data/organized (train split) as a new manifest version")
    parser.add_argument("--strict", action="store_true", help="write nothing if any item is rejected")


def run(args, ctx) -> int:
    from ..active import import_annotations
    from ..log import console

    cfg = ctx.config
    ctx.start_stage("import-annotations")
    r = import_annotations(cfg.active_learning, ctx.workspace, ctx.workspace.path(args.annotations),
                           output=args.output, package=ctx.workspace.path(args.package) if args.package else None,
                           merge=args.merge, strict=args.strict)
    totals = r.qa_summary.get("totals", {})
    console.print(
        f"package {r.package_id}: {r.imported_images} images, {r.imported_boxes} boxes -> {r.labels_dir}; "
        f"{r.rejected} rejected, {r.missing} not returned\n"
        f"vendor vs model: " + ", ".join(f"{k} {v}" for k, v in totals.items())
        + f"\nreport and QA diff: {r.report_dir}"
        + (f"\nmerged into the train split; dataset manifest {r.merged_manifest}" if r.merged_manifest else ""),
        highlight=False,
    )
    return 0
