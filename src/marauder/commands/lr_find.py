"""`marauder lr-find`: learning-rate range test for the baseline detector."""

from __future__ import annotations

HELP = "learning-rate range test: saves the loss/LR plot and prints the suggested baseline learning rate"


def add_arguments(parser) -> None:
    parser.add_argument("--steps", type=int, default=None, help="override baseline_yolo.lr_find.steps")


def run(args, ctx) -> int:
    from pydantic import ValidationError

    from ..errors import ConfigError
    from ..train.lr_find import run_lr_find

    cfg = ctx.config
    ws = ctx.workspace
    lf = cfg.baseline_yolo.lr_find
    if args.steps is not None:
        try:
            lf = type(lf).model_validate({**lf.model_dump(), "steps": args.steps})
        except ValidationError as exc:
            raise ConfigError(f"--steps {args.steps}: {exc.errors()[0]['msg']}") from None
    log = ctx.start_stage("lr-find", ws.path(lf.plot).parent)
    result = run_lr_find(cfg.baseline_yolo, lf, cfg.general, ws)
    log.info("plot: %s", result.plot)
    print(f"suggested learning rate: {result.suggested_lr:.3g}  (set baseline_yolo.learning_rate)")
    return 0
