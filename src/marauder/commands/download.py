"""marauder download: FathomNet images, YOLO labels and metadata into data/fathomnet/."""

from __future__ import annotations

import argparse

from ..pipeline.declare import Stage

HELP = "download FathomNet images + YOLO labels + metadata.json (resumable, concurrent, retrying)"


# what `marauder pipeline` needs to know about this stage (marauder.pipeline.declare)
STAGE = Stage(
    "download", ("data",),
    outputs=lambda ws, cfg: [ws.fathomnet_metadata],
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--concepts", nargs="+", metavar="NAME",
                   help="scientific or common names, one class each (default: data.fathomnet.concepts)")
    p.add_argument("--limit", type=int, metavar="N", help="images per concept (default: data.fathomnet.limit)")
    p.add_argument("--exact", action="store_true", help="only the named concepts, no WoRMS descendants")
    p.add_argument("--concurrency", type=int, metavar="N", help="parallel downloads")
    p.add_argument("--min-depth", type=float, metavar="M")
    p.add_argument("--max-depth", type=float, metavar="M")
    p.add_argument("--region", type=float, nargs=4, metavar=("MIN_LAT", "MIN_LON", "MAX_LAT", "MAX_LON"))
    p.add_argument("--start", metavar="DATE", help="ISO date/time, images taken on or after")
    p.add_argument("--end", metavar="DATE", help="ISO date/time, images taken before")


def _filters(cfg, args) -> dict:
    from ..errors import ConfigError

    f = cfg.filters
    region = args.region or f.region
    out = {
        "minDepth": args.min_depth if args.min_depth is not None else f.min_depth,
        "maxDepth": args.max_depth if args.max_depth is not None else f.max_depth,
        "startTimestamp": args.start or f.start_time,
        "endTimestamp": args.end or f.end_time,
    }
    if region:
        out.update(minLatitude=region[0], minLongitude=region[1], maxLatitude=region[2], maxLongitude=region[3])
    from fathomnet.dto import GeoImageConstraints
    from pydantic import ValidationError

    try:
        GeoImageConstraints(**{k: v for k, v in out.items() if v is not None})
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(f"bad filter {err['loc'][0]}: {err['msg']}") from None
    return {k: v for k, v in out.items() if v is not None}


def run(args, ctx) -> int:
    from ..cli import _OVERRIDE
    from ..data.fathomnet import DownloadOptions, run_download
    from ..data.fathomnet.retry import RetryPolicy
    from ..errors import ConfigError

    if args.concepts:  # `--concepts A B data.x=1`: argparse hands the override to --concepts
        ctx.overrides.extend(c for c in args.concepts if _OVERRIDE.match(c))
        args.concepts = [c for c in args.concepts if not _OVERRIDE.match(c)]
    cfg = ctx.config.data.fathomnet
    ws = ctx.workspace
    ctx.start_stage("download")
    limit = args.limit if args.limit is not None else cfg.limit
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {limit}")
    concurrency = args.concurrency if args.concurrency is not None else cfg.concurrency
    if concurrency < 1:
        raise ConfigError(f"--concurrency must be >= 1, got {concurrency}")
    opts = DownloadOptions(
        concepts=list(args.concepts or cfg.concepts),
        classes=list(ctx.config.general.classes),
        aliases=dict(cfg.aliases),
        limit=limit,
        include_descendants=cfg.include_descendants and not args.exact,
        page_size=cfg.page_size,
        concurrency=concurrency,
        policy=RetryPolicy(max_retries=cfg.max_retries, backoff_seconds=cfg.backoff_seconds),
        timeout=cfg.timeout_seconds,
        filters=_filters(cfg, args),
    )
    result = run_download(opts, ws.fathomnet_images, ws.fathomnet_labels, ws.fathomnet_metadata)
    if result.failures and not (result.downloaded or result.present):
        return 1
    return 0
