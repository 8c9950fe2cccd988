"""`marauder active-learn`: score the unlabelled pool with the baseline, export an annotation package."""

from __future__ import annotations

from ..pipeline.declare import Stage

HELP = "pick the most informative unlabelled images and write outputs/active_learning/annotation_package.zip"


# what `marauder pipeline` needs to know about this stage (marauder.pipeline.declare)
STAGE = Stage(
    "active-learn", ("active_learning", "data", "general"),
    inputs=lambda ws, cfg: [ws.baseline_best, *ws.unlabelled_dirs],  # the pool it picks from
    outputs=lambda ws, cfg: [ws.annotation_package],
)


def add_arguments(parser) -> None:
    parser.add_argument("--device", default=None, help="cpu, 0, cuda:0 ... (default: general.device)")


def run(args, ctx) -> int:
    from ..active import run_active_learning
    from ..log import console

    cfg = ctx.config
    ctx.start_stage("active-learn", ctx.workspace.stage_outputs("active-learn"))
    device = args.device or (None if cfg.general.device == "auto" else cfg.general.device)
    result = run_active_learning(
        cfg.active_learning, ctx.workspace, extra_pool_dirs=list(cfg.data.extra_unlabelled_dirs),
        imgsz=cfg.general.imgsz, device=None if device is None else str(device),
    )
    s = result.stats
    console.print(
        f"package {result.package.package_id}: {len(result.package.entries)} images, "
        f"{result.package.n_pre_annotations} pre-annotations -> {result.package.path}\n"
        f"pool: {s.listed} listed, {s.scored} scored, {s.excluded} already labelled/sent, "
        f"{s.duplicates} duplicates, {s.unreadable} unreadable; all scores in {result.scores_csv}",
        highlight=False,
    )
    return 0
