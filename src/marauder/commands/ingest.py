"""marauder ingest: unlabelled images and footage into data/deepfish/images or data/marauder/images."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "ingest DeepFish images or your own footage (images + videos -> frames) as an unlabelled pool"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source_dir", type=Path, metavar="DIR", help="folder to ingest (searched recursively)")
    p.add_argument("--source", required=True, choices=["deepfish", "marauder"],
                   help="deepfish -> data/deepfish/images; marauder (own footage, videos too) -> data/marauder/images")
    p.add_argument("--frame-rate", type=float, metavar="FPS", help="frames per second taken from videos")
    p.add_argument("--phash-distance", type=int, metavar="BITS",
                   help="frames closer than this (of 64 bits) to the last kept frame are dropped")
    p.add_argument("--link", choices=["copy", "hardlink", "symlink"], help="how images are placed")


def run(args, ctx) -> int:
    from rich.table import Table

    from ..data.ingest import run_ingest
    from ..errors import ConfigError
    from ..log import console

    cfg = ctx.config.data.ingest
    frame_rate = args.frame_rate if args.frame_rate is not None else cfg.frame_rate
    distance = args.phash_distance if args.phash_distance is not None else cfg.phash_distance
    if frame_rate <= 0:
        raise ConfigError(f"--frame-rate must be > 0, got {frame_rate}")
    if not 0 <= distance <= 64:
        raise ConfigError(f"--phash-distance must be within 0..64, got {distance}")
    out = ctx.workspace.deepfish_images if args.source == "deepfish" else ctx.workspace.marauder_images
    log = ctx.start_stage("ingest")
    r = run_ingest(args.source_dir, args.source, out, frame_rate=frame_rate, phash_distance=distance,
                   link=args.link or cfg.link, jpeg_quality=cfg.jpeg_quality)
    table = Table(title=f"ingest {args.source} -> {out}")
    table.add_column("what")
    table.add_column("count", justify="right")
    for what, n in [("files scanned", r.scanned), ("images added", r.added), ("duplicates skipped", r.duplicates),
                    ("videos", r.videos), ("frames written", r.frames_written),
                    ("near-duplicate frames dropped", r.frames_near_duplicate),
                    ("unreadable (skipped)", len(r.unreadable)), ("videos ignored", len(r.skipped_videos))]:
        table.add_row(what, str(n))
    for name in r.unreadable:
        table.add_row(f"  skipped: {name}", "")
    console.print(table)
    for name in r.unreadable:
        log.warning("unreadable, skipped: %s", name)
    if r.skipped_videos:
        log.warning("%d videos ignored: --source deepfish takes images only (use --source marauder)",
                    len(r.skipped_videos))
    return 0
