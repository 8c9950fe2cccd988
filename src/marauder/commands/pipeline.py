"""`marauder pipeline`: every stage in the guide's order; reruns skip what is up to date."""

from __future__ import annotations

HELP = "run the whole pipeline (download -> ... -> evaluate), resuming where it stopped"


def add_arguments(parser) -> None:
    parser.add_argument("--from", dest="start", default=None, metavar="STAGE", help="first stage to run")
    parser.add_argument("--to", dest="stop", default=None, metavar="STAGE", help="last stage to run")
    parser.add_argument("--skip", action="append", default=[], metavar="STAGE", help="stage to leave out")
    parser.add_argument("--force", action="store_true", help="rerun stages even when up to date")
    parser.add_argument("--no-vendor-pause", action="store_true",
                        help="go on after active learning without waiting for vendor labels")


def run(args, ctx) -> int:
    from ..pipeline.runner import PipelineOptions, run_pipeline

    ctx.start_stage("pipeline", ctx.workspace.stage_outputs("pipeline"))
    opts = PipelineOptions(
        start=args.start, stop=args.stop,
        skip=tuple(args.skip), force=args.force, vendor_pause=not args.no_vendor_pause,
    )
    return run_pipeline(ctx, opts)
