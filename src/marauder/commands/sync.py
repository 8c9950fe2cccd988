"""marauder sync: push/pull a folder (checkpoints, data) to DigitalOcean Spaces or S3."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "sync a folder to/from S3-compatible storage (DO Spaces, AWS S3): push | pull LOCAL [s3://bucket/prefix]"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("direction", choices=["push", "pull"])
    p.add_argument("local", type=Path, metavar="LOCAL", help="local file or folder (relative: under --workspace)")
    p.add_argument("remote", nargs="?", metavar="s3://BUCKET/PREFIX",
                   help="default: s3://<storage.bucket>/<storage.prefix>/<LOCAL's name>")
    p.add_argument("--delete", action="store_true",
                   help="also delete what the destination has and the source lacks (never without this flag)")
    p.add_argument("--dry-run", action="store_true", help="say what would change, change nothing")
    p.add_argument("--endpoint-url", help="S3 endpoint (default: storage.endpoint_url)")


def run(args, ctx) -> int:
    from ..data.storage import MB, Remote, TransferSettings, make_client, pull, push
    from ..log import console

    cfg = ctx.config.storage
    log = ctx.start_stage("sync")
    local = ctx.workspace.path(args.local)  # relative paths are under --workspace, as in every command
    if args.remote:
        remote = Remote.parse(args.remote)
    else:
        name = local.resolve().name if not local.is_file() else ""  # a file keeps its own name as key
        prefix = "/".join(p for p in (cfg.prefix.strip("/"), name) if p)
        remote = Remote.parse(f"s3://{cfg.bucket}/{prefix}")
    settings = TransferSettings(multipart_threshold=cfg.multipart_threshold_mb * MB,
                                chunk_size=cfg.multipart_chunk_mb * MB, max_concurrency=cfg.max_concurrency)
    client = make_client(args.endpoint_url or cfg.endpoint_url, cfg.region, cfg.provider)
    if args.direction == "push":
        r = push(client, local, remote, settings, delete=args.delete, dry_run=args.dry_run)
        arrow = f"{local} -> {remote}"
    else:
        r = pull(client, remote, local, settings, delete=args.delete, dry_run=args.dry_run)
        arrow = f"{remote} -> {local}"
    verb = "would transfer" if args.dry_run else "transferred"
    log.info("%s: %s %d files (%.1f MB), %d unchanged, %d deleted", arrow, verb, len(r.transferred),
             r.bytes_transferred / MB, len(r.skipped), len(r.deleted))
    for rel in r.deleted:
        console.print(f"deleted {rel}" if not args.dry_run else f"would delete {rel}")
    return 0
