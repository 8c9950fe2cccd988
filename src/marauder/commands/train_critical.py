"""`marauder train-critical`: oversampling + hard negative mining for critical species, with a recall gate."""

from __future__ import annotations

from ..pipeline.declare import Stage, last_epoch_metric

HELP = ("specialise on critical species (oversampling, hard negative mining) -> "
        "checkpoints/critical_species/best.pt; exits 1 when a species misses critical_species.min_recall")


# what `marauder pipeline` needs to know about this stage (marauder.pipeline.declare)
STAGE = Stage(
    "train-critical", ("critical_species", "baseline_yolo", "general"),
    inputs=lambda ws, cfg: [ws.organized_dir, ws.baseline_best],
    outputs=lambda ws, cfg: [ws.critical_best],
    metric=lambda ws: last_epoch_metric(ws, "critical_species"),
)


def add_arguments(parser) -> None:
    parser.add_argument("--no-gate", action="store_true",
                        help="report the recall gate but exit 0 even when a critical species misses min_recall")


def run(args, ctx) -> int:
    import json

    from ..train.critical import STAGE, format_report, preflight, run_critical_species

    cfg = ctx.config
    ws = ctx.workspace
    # bad input (unknown species, none in train, mismatched base model) fails before logs or files appear
    plan = preflight(cfg.critical_species, cfg.general, ws, baseline_epochs=cfg.baseline_yolo.epochs)
    logger = ctx.start_stage("train-critical", ws.checkpoints(STAGE))
    result = run_critical_species(cfg.critical_species, cfg.general, ws, baseline_epochs=cfg.baseline_yolo.epochs,
                                  logging_cfg=cfg.logging, plan=plan)
    table = format_report(json.loads(result.report_json.read_text(encoding="utf-8")))
    for line in table.splitlines():
        logger.info("%s", line)
    print(table)
    print(result.report_json)
    print(result.best)
    if not result.passed:
        failed = ", ".join(f["species"] for f in result.gate["failures"])
        if args.no_gate:
            logger.warning("recall gate failed for %s; --no-gate given, exiting 0", failed)
            return 0
        logger.error("recall gate failed for %s (min_recall %s); the model is at %s but is not fit for "
                     "deployment (use --no-gate to accept it)", failed, result.gate["min_recall"], result.best)
        return 1
    return 0
