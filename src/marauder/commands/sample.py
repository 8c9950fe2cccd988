"""`marauder sample`: write the embedded synthetic underwater dataset (deterministic by seed)."""

from __future__ import annotations

from pathlib import Path

HELP = "write the embedded synthetic underwater detection sample (labelled set + unlabelled pool)"


def add_arguments(parser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--output", type=Path, help="folder to create (must not exist)")
    where.add_argument("--into-workspace", action="store_true",
                       help="write where the stages look: data/fathomnet/ (labelled) and data/marauder/images "
                            "(unlabelled pool) of the workspace")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same files (default 0)")
    parser.add_argument("--images", type=int, default=96, help="labelled images (default 96)")
    parser.add_argument("--unlabelled", type=int, default=48, help="unlabelled pool images (default 48)")
    parser.add_argument("--size", type=int, nargs=2, default=(160, 120), metavar=("W", "H"),
                        help="image width and height in pixels (default 160 120)")
    parser.add_argument("--force", action="store_true", help="replace an existing output folder")


def run(args, ctx) -> int:
    from ..data.sample import generate_sample, install_sample
    from ..log import console

    ctx.start_stage("sample")
    if args.into_workspace:
        info = install_sample(ctx.workspace, seed=args.seed, n_images=args.images, image_size=tuple(args.size),
                              n_unlabelled=args.unlabelled)
        pool = ctx.workspace.marauder_images
    else:
        info = generate_sample(ctx.workspace.path(args.output), seed=args.seed, n_images=args.images,
                               image_size=tuple(args.size), n_unlabelled=args.unlabelled, replace=args.force)
        pool = info.unlabelled_dir
    counts = ", ".join(f"{k} {v}" for k, v in info.class_counts.items())
    console.print(
        f"sample written to {info.root}: {info.n_images} images ({info.n_empty} empty), {info.n_boxes} boxes "
        f"({counts}), {len(info.dives)} dives, {info.n_unlabelled} unlabelled in {pool}",
        highlight=False,
    )
    return 0
