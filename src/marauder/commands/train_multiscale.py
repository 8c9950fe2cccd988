"""`marauder train-multiscale`: fine-tune with batches drawn from a resolution list; small-object AP before/after."""

from __future__ import annotations

from pathlib import Path

HELP = "multi-scale fine-tuning (<name>_multiscale checkpoints) with small-object AP before and after"


def add_arguments(parser) -> None:
    parser.add_argument("--models", nargs="+", type=Path, default=None, metavar="PT",
                        help="checkpoints to fine-tune (default: multiscale_training.models, else every "
                             "checkpoints/ensemble/<variant>/best.pt)")
    parser.add_argument("--no-eval", action="store_true",
                        help="skip the before/after evaluation (small-object AP) on the eval split")


def run(args, ctx) -> int:
    from ..train.multiscale import format_comparison, run_multiscale

    cfg = ctx.config
    ws = ctx.workspace
    out = ws.stage_outputs("train-multiscale")
    logger = ctx.start_stage("train-multiscale", out)
    result = run_multiscale(cfg.multiscale_training, cfg.general, ws, models=args.models,
                            evaluate=not args.no_eval, output_dir=out)
    for m in result.models:
        logger.info("%s: %s -> %s", m.name, m.status, m.best)
        print(m.best)
    if result.comparison:
        table = format_comparison(result.comparison)
        for line in table.splitlines():
            logger.info("%s", line)
        print(table)
        print(out / "multiscale_comparison.json")
    return 0
