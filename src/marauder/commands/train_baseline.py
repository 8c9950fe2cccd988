"""`marauder train-baseline`: the first YOLO detector (optionally from the SSL backbone)."""

from __future__ import annotations

from pathlib import Path

from ..pipeline.declare import Stage, last_epoch_metric

HELP = "train the baseline YOLO detector -> checkpoints/baseline/best.pt (resumes an interrupted run)"


# what `marauder pipeline` needs to know about this stage (marauder.pipeline.declare)
STAGE = Stage(
    "train-baseline", ("baseline_yolo", "ensemble", "general", "checkpointing"),  # ensemble: the one architecture
    inputs=lambda ws, cfg: [ws.organized_dir, *([ws.ssl_best] if cfg.baseline_yolo.use_ssl_backbone else [])],
    outputs=lambda ws, cfg: [ws.baseline_best],
    metric=lambda ws: last_epoch_metric(ws, "baseline"),
)


def add_arguments(parser) -> None:
    parser.add_argument("--resume", type=Path, default=None, metavar="PATH",
                        help="resume from this last.pt (default: resume runs/baseline automatically if unfinished)")


def run(args, ctx) -> int:
    from ..train.baseline import preflight, run_baseline

    cfg = ctx.config
    ws = ctx.workspace
    preflight(cfg.baseline_yolo, ws)  # bad input fails here, before the log and resolved config are written
    log = ctx.start_stage("train-baseline", ws.stage_checkpoints("train-baseline"))
    result = run_baseline(cfg.baseline_yolo, cfg.general, ws, checkpointing=cfg.checkpointing,
                          logging_cfg=cfg.logging, resume=args.resume, ensemble=cfg.ensemble)
    m = result.metrics
    log.info("best: %s (mAP50 %.4f, mAP50-95 %.4f)%s", result.best, m.get("metrics/mAP50(B)", float("nan")),
             m.get("metrics/mAP50-95(B)", float("nan")),
             f"; {result.ssl_tensors_loaded} SSL backbone tensors loaded" if result.ssl_tensors_loaded else "")
    print(result.best)
    return 0
