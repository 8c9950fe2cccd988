"""`marauder calibrate`: TTA + fusion + per-class calibration and thresholds -> pipeline_config.yaml."""

from __future__ import annotations

from pathlib import Path

from ..pipeline.declare import Stage, deployed_weights, read_json

HELP = "fit TTA, fusion, score calibration and per-class thresholds on labelled data (pipeline_config.yaml)"


# what `marauder pipeline` needs to know about this stage (marauder.pipeline.declare)
def _tta_and_ece(ws) -> str | None:
    data = read_json(ws.calibration_report)
    try:
        return (f"mAP50-95 {data['map']['ensemble']['mAP50-95']:.3f}->{data['map']['ensemble_tta']['mAP50-95']:.3f}"
                f" with TTA; ECE {data['ece']['before']:.3f}->{data['ece']['after']:.3f}")
    except (TypeError, KeyError):
        return None


STAGE = Stage(
    "calibrate", ("tta_calibration", "critical_species", "general"),
    inputs=lambda ws, cfg: [*deployed_weights(ws, cfg), ws.organized_dir],
    outputs=lambda ws, cfg: [ws.pipeline_config, ws.calibrator],
    args=lambda ws, cfg: [
        "--models", *map(str, deployed_weights(ws, cfg)),
        "--calibration-data", str(ws.organized_images("val")),
    ],
    metric=_tta_and_ece,
)


def add_arguments(parser) -> None:
    parser.add_argument(
        "--models",
        nargs="+",
        type=Path,
        required=True,
        help="model files (.pt/.onnx/.engine) sharing one class list, e.g. the ensemble's best.pt",
    )
    parser.add_argument(
        "--calibration-data",
        type=Path,
        default=None,
        help="labelled images: a split folder of data/organized (e.g. data/organized/val) "
        "or a dataset.yaml (default: data/organized/images/val)",
    )
    parser.add_argument(
        "--split",
        default="val",
        choices=("train", "val", "test"),
        help="split to use when --calibration-data is a dataset.yaml (default: val)",
    )
    parser.add_argument(
        "--output", type=Path, default=None, help="output folder (default: checkpoints/tta_calibration)"
    )
    parser.add_argument("--device", default=None, help="cpu, 0, cuda:0 ... (default: general.device)")
    parser.add_argument("--batch", type=int, default=8, help="images per predict call (each with all views)")


def run(args, ctx) -> int:
    from ..calibrate.stage import run_calibrate, summary_line
    from ..config.loader import save_resolved

    cfg = ctx.config
    ws = ctx.workspace
    out = ws.path(args.output) if args.output else ws.stage_checkpoints("calibrate")
    logger = ctx.start_stage("calibrate")
    data = ws.path(args.calibration_data) if args.calibration_data else ws.organized_images("val")
    device = args.device or (None if cfg.general.device == "auto" else cfg.general.device)
    result = run_calibrate(
        cfg.tta_calibration,
        list(cfg.critical_species.species),
        [ws.path(m) for m in args.models],
        data,
        out,
        split=args.split,
        device=device,
        batch=args.batch,
        seed=cfg.general.seed,
    )
    save_resolved(cfg, out)
    logger.info("wrote %s, %s and report.md", result.pipeline_config, result.calibrator)
    print(summary_line(result.report))
    print(result.pipeline_config)
    return 0
