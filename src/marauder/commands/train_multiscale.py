"""`marauder train-multiscale`: fine-tune with batches drawn from a resolution list; small-object AP before/after."""

from __future__ import annotations

from pathlib import Path

from ..pipeline.declare import Stage, multiscale_weights, read_json, variant_weights

HELP = "multi-scale fine-tuning (<name>_multiscale checkpoints) with small-object AP before and after"


# what `marauder pipeline` needs to know about this stage (marauder.pipeline.declare)
def _small_object_change(ws) -> str | None:
    data = read_json(ws.multiscale_comparison)
    deltas = [r["AP_small_delta"] for r in (data or {}).get("rows", []) if r.get("AP_small_delta") is not None]
    return f"mean AP_small change={sum(deltas) / len(deltas):+.3f}" if deltas else None


STAGE = Stage(
    "train-multiscale", ("multiscale_training", "general"),
    inputs=variant_weights,
    outputs=multiscale_weights,
    enabled=lambda cfg: cfg.multiscale_training.enabled,
    metric=_small_object_change,
)


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
