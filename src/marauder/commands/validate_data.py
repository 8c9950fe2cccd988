"""`marauder validate-data`: check a dataset's images and labels; --fix quarantines bad files."""

from __future__ import annotations

from pathlib import Path

HELP = "check images and labels (corrupt, malformed, out of range, unknown class, duplicates); --fix quarantines"


def add_arguments(parser) -> None:
    parser.add_argument("dataset", type=Path, nargs="?", default=None,
                        help="organised folder, dataset.yaml, or a folder with images/ + labels/ "
                             "(default: data/organized)")
    parser.add_argument("--fix", action="store_true",
                        help="move offending files into <dataset>/quarantine/ with a reason file (never deletes)")
    parser.add_argument("--nc", type=int, default=None,
                        help="number of classes, when the dataset has no dataset.yaml or classes.txt")
    parser.add_argument("--full-decode", action="store_true",
                        help="decode every image in full (slower; also catches damage inside complete-looking JPEGs)")
    parser.add_argument("--report", type=Path, default=None, help="also write the findings as JSON here")


def run(args, ctx) -> int:
    from ..data.validate import quarantine, validate_dataset
    from ..errors import MissingInputError
    from ..fsio import atomic_write_json
    from ..log import console

    target = ctx.workspace.path(args.dataset) if args.dataset else ctx.workspace.organized_dir
    if args.dataset is None and not target.exists():
        raise MissingInputError(target, "marauder organize")
    ctx.start_stage("validate-data")
    report = validate_dataset(target, num_classes=args.nc, full_decode=args.full_decode)
    for issue in report.issues:
        console.print(str(issue), highlight=False, markup=False, soft_wrap=True)
    summary = ", ".join(f"{k} {v}" for k, v in report.by_kind().items()) or "no problems"
    console.print(f"{report.root}: {report.n_images} images, {report.n_labels} label files, "
                  f"{report.n_boxes} boxes; {summary}", highlight=False, markup=False)
    remaining = report
    if args.fix and report.issues:
        moved = quarantine(report)
        console.print(f"quarantined {len(moved)} file(s) into {report.root / 'quarantine'} "
                      "(each with a .reason.txt)", highlight=False, markup=False)
        remaining = validate_dataset(target, num_classes=args.nc, show_progress=False,
                                     full_decode=args.full_decode)
        if remaining.issues:
            console.print(f"{len(remaining.issues)} problem(s) remain after --fix", highlight=False)
    if args.report:
        atomic_write_json(ctx.workspace.path(args.report), {
            "root": str(report.root), "images": report.n_images, "labels": report.n_labels,
            "boxes": report.n_boxes, "counts": report.by_kind(),
            "issues": [{"kind": i.kind, "file": str(i.file), "line": i.line, "split": i.split,
                        "message": i.message} for i in report.issues],
            "quarantined": [str(p) for p in report.quarantined],
            "remaining": len(remaining.issues),
        })
    return 0 if not remaining.issues else 1
