"""`marauder organize`: split labelled images into train/val/test with a dataset.yaml and a manifest."""

from __future__ import annotations

from pathlib import Path

from ..pipeline.declare import Stage

HELP = "split labelled images into train/val/test (stratified, group-aware) and write dataset.yaml"


# what `marauder pipeline` needs to know about this stage (marauder.pipeline.declare)
STAGE = Stage(
    "organize", ("data", "general"),
    inputs=lambda ws, cfg: [ws.fathomnet_images, ws.fathomnet_labels],
    outputs=lambda ws, cfg: [ws.dataset_yaml],
    args=lambda ws, cfg: [
        "--source-images", str(ws.fathomnet_images), "--source-labels", str(ws.fathomnet_labels),
        "--output", str(ws.organized_dir), "--split", *map(str, cfg.data.organize.split),
    ],
)


def add_arguments(parser) -> None:
    parser.add_argument("--source-images", type=Path, default=None,
                        help="folder of images (default: data/fathomnet/images)")
    parser.add_argument("--source-labels", type=Path, default=None,
                        help="folder of YOLO label files (default: data/fathomnet/labels)")
    parser.add_argument("--output", type=Path, default=None, help="output folder (default: data/organized)")
    parser.add_argument("--split", type=float, nargs=3, default=None, metavar=("TRAIN", "VAL", "TEST"),
                        help="fractions summing to 1 (default: data.organize.split, 0.7 0.15 0.15)")
    parser.add_argument("--seed", type=int, default=None, help="seed for the split (default: data.organize.seed)")
    parser.add_argument("--group-by", default=None, metavar="REGEX|meta:KEY",
                        help="keep groups in one split: first capture group of the file name, or a key of "
                             "metadata.json / source_map.csv beside the images (default: the metadata's "
                             "group key when present)")
    parser.add_argument("--names", nargs="+", default=None,
                        help="class names in index order (default: classes.txt beside the sources, "
                             "else general.classes)")
    parser.add_argument("--link", choices=("copy", "hardlink"), default=None,
                        help="copy files or hardlink them (default: data.organize.link)")
    parser.add_argument("--skip-invalid", action="store_true",
                        help="leave out source files that fail validation instead of stopping")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an output folder that holds a different organised dataset")


def run(args, ctx) -> int:
    from ..config import dump_config
    from ..data.organize import organize_dataset
    from ..log import console

    cfg = ctx.config
    org = cfg.data.organize
    ws = ctx.workspace
    source_images = ws.path(args.source_images) if args.source_images else ws.fathomnet_images
    source_labels = ws.path(args.source_labels) if args.source_labels else ws.fathomnet_labels
    output = ws.path(args.output) if args.output else ws.organized_dir
    ctx.start_stage("organize")
    result = organize_dataset(
        source_images, source_labels, output,
        split=args.split if args.split is not None else org.split,
        seed=args.seed if args.seed is not None else org.seed,
        group_by=args.group_by if args.group_by is not None else org.group_by,
        names=args.names, link=args.link or org.link, default_names=cfg.general.classes,
        skip_invalid=args.skip_invalid, overwrite=args.overwrite,
        extra_files={"resolved_config.yaml": dump_config(cfg)},
    )
    state = "unchanged (already organised)" if result.unchanged else "written"
    console.print(f"{result.output}: {state}", highlight=False)
    for split, c in result.counts.items():
        per_class = ", ".join(f"{k} {v}" for k, v in c["classes"].items())
        console.print(f"  {split:5s} {c['images']:5d} images {c['boxes']:6d} boxes {c['groups']:4d} groups  "
                      f"({per_class})", highlight=False)
    console.print(f"  dataset.yaml: {result.dataset_yaml}", highlight=False)
    return 0
