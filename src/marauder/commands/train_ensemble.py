"""`marauder train-ensemble`: the ensemble's variants, budget-checked and resumable; `--validate` compares."""

from __future__ import annotations

from pathlib import Path

from ..pipeline.declare import Stage, read_json, variant_weights

HELP = "train the ensemble variants (checkpoints/ensemble/<variant>/) and optionally validate the fusion"


# what `marauder pipeline` needs to know about this stage (marauder.pipeline.declare)
def _fused_vs_best_member(ws) -> str | None:
    data = read_json(ws.ensemble_validation)
    if not data or not data.get("rows"):
        return None
    members = [r for r in data["rows"] if r["kind"] == "member" and r.get("mAP50-95") is not None]
    fused = next((r for r in data["rows"] if r["kind"] == "ensemble"), None)
    if not members or fused is None or fused.get("mAP50-95") is None:
        return None
    return f"fused mAP50-95={fused['mAP50-95']:.3f} (best member {max(r['mAP50-95'] for r in members):.3f})"


STAGE = Stage(
    "train-ensemble", ("ensemble", "general"),
    inputs=lambda ws, cfg: [ws.organized_dir, ws.critical_best],
    outputs=variant_weights,
    args=lambda ws, cfg: ["--validate"],
    metric=_fused_vs_best_member,
)


def add_arguments(parser) -> None:
    parser.add_argument("--validate", action="store_true",
                        help="after training, evaluate each variant and the fused ensemble on the val split")
    parser.add_argument("--resume", type=Path, default=None, metavar="LAST_PT",
                        help="resume this checkpoint, e.g. checkpoints/ensemble/high_recall/last.pt "
                             "(a plain rerun already resumes interrupted variants and skips finished ones)")
    parser.add_argument("--variants", default=None, metavar="NAME[,NAME...]",
                        help="train only these variants, comma-separated (default: all of ensemble.variants)")
    parser.add_argument("--split", default="val", choices=("val", "test"),
                        help="split --validate evaluates on (default: val)")


def run(args, ctx) -> int:
    from ..train.ensemble import format_table, run_ensemble, validate_ensemble

    cfg = ctx.config
    ws = ctx.workspace
    logger = ctx.start_stage("train-ensemble", ws.stage_checkpoints("train-ensemble"))
    resume = ws.path(args.resume) if args.resume else None
    only = [n.strip() for n in args.variants.split(",") if n.strip()] if args.variants else None
    result = run_ensemble(cfg.ensemble, cfg.general, ws, resume=resume, only=only)
    for v in result.variants:
        cost = result.budget.get(v.name, {})
        logger.info("%s: %s (%s) %s, %.2fM params, %.2f GFLOPs at %spx", v.name, v.status, v.best,
                    " ".join(f"{k}={val:.4f}" for k, val in v.metrics.items() if "mAP" in k),
                    cost.get("params_m", 0), cost.get("gflops", 0), cost.get("imgsz"))
        print(v.best)
    if args.validate:
        device = None if cfg.general.device == "auto" else cfg.general.device
        validation = validate_ensemble(result, cfg.ensemble, split=args.split,
                                       imgsz=cfg.ensemble.imgsz or cfg.general.imgsz, device=device,
                                       output_dir=ws.stage_outputs("train-ensemble"))
        table = format_table(validation)
        for line in table.splitlines():
            logger.info("%s", line)
        print(table)
        print(ws.ensemble_validation)
    return 0
