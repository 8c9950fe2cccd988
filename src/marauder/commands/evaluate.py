"""`marauder evaluate`: COCO metrics, operating-point metrics and an HTML report for any model kind."""

from __future__ import annotations

from pathlib import Path

from ..pipeline.declare import Stage, json_metric

HELP = "evaluate a .pt/.onnx/.engine model or a pipeline config on a dataset split (report.json/md/html)"


# what `marauder pipeline` needs to know about this stage (marauder.pipeline.declare)
STAGE = Stage(
    "evaluate", ("evaluation", "critical_species", "general"),
    inputs=lambda ws, cfg: [ws.pipeline_config, ws.organized_dir],
    outputs=lambda ws, cfg: [ws.evaluation_report()],
    args=lambda ws, cfg: [
        "--model", str(ws.pipeline_config), "--test-data", str(ws.dataset_yaml),
        "--output", str(ws.evaluation_report().parent),
    ],
    metric=lambda ws: json_metric(ws.evaluation_report(), "summary", "mAP50-95"),
)


def add_arguments(parser) -> None:
    parser.add_argument("--model", type=Path, required=True,
                        help="model to evaluate: .pt, .onnx, .engine (needs TensorRT) or pipeline_config.yaml")
    parser.add_argument("--test-data", type=Path, default=None,
                        help="dataset.yaml (default: data/organized/dataset.yaml)")
    parser.add_argument("--split", choices=("train", "val", "test"), default=None,
                        help="split to evaluate (default: evaluation.split)")
    parser.add_argument("--imgsz", type=int, default=None, help="inference size (default: evaluation.imgsz or the model's)")
    parser.add_argument("--conf", type=float, default=None, help="minimum score kept for mAP (default: evaluation.conf)")
    parser.add_argument("--iou", type=float, default=None, help="NMS IoU (default: evaluation.iou)")
    parser.add_argument("--batch", type=int, default=None, help="images per inference batch (default: evaluation.batch)")
    parser.add_argument("--device", default=None, help="cpu, 0, cuda:0 ... (default: general.device)")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="model (or its report.json) to compare against; exit 1 when --model is worse "
                             "than it beyond evaluation.map_tolerance / recall_tolerance")
    parser.add_argument("--map-classes", default=None, metavar="MAP",
                        help="evaluate a model whose class names differ from the dataset's: "
                             "'model_name=dataset_name,other=-' ('-' drops a class) or a YAML/JSON mapping file")
    parser.add_argument("--output", type=Path, default=None,
                        help="report folder (default: outputs/evaluation/<model-stem>/)")


def run(args, ctx) -> int:
    from ..config.loader import save_resolved
    from ..errors import MissingInputError
    from ..evaluate.classmap import parse_class_map
    from ..evaluate.stage import run_evaluation

    cfg, ws = ctx.config, ctx.workspace
    model = ws.path(args.model)
    if not model.exists():
        maker = {".yaml": "marauder calibrate", ".yml": "marauder calibrate", ".onnx": "marauder export",
                 ".engine": "marauder export"}.get(model.suffix.lower(), "marauder train-baseline")
        raise MissingInputError(model, maker)
    data = ws.path(args.test_data) if args.test_data else ws.dataset_yaml
    if not data.exists():
        raise MissingInputError(data, "marauder organize")
    baseline = ws.path(args.baseline) if args.baseline else None
    if baseline is not None and not baseline.exists():
        raise MissingInputError(baseline, "marauder evaluate" if baseline.suffix == ".json" else "marauder train-baseline")
    out = ws.path(args.output) if args.output else ws.stage_outputs("evaluate") / model.stem
    logger = ctx.start_stage("evaluate")  # config saved beside the report only once it exists
    device = args.device or (None if cfg.general.device == "auto" else cfg.general.device)
    result = run_evaluation(
        cfg.evaluation, model, data, critical_species=list(cfg.critical_species.species), output_dir=out,
        baseline=baseline, class_map=parse_class_map(args.map_classes), seed=cfg.general.seed, device=device,
        split=args.split, imgsz=args.imgsz, conf=args.conf, iou=args.iou, batch=args.batch,
    )
    save_resolved(cfg, out)
    logger.info("wrote %s", out / "report.html")
    print(_headline(result.report))
    print(out / "report.html")
    if result.comparison is None:
        return 0
    print(f"NEW {model}  vs  BASELINE {baseline}")
    print(result.comparison.table())
    return 0 if result.passed else 1


def _headline(report) -> str:
    s = report.summary

    def f(v):
        return "-" if v is None else f"{v:.4f}"

    crit = ", ".join(f"{n} {f(m['recall'])} [{f(m['ci_low'])}, {f(m['ci_high'])}]"
                     for n, m in s["critical_recall"].items())
    return (f"mAP50-95 {f(s['mAP50-95'])}  mAP50 {f(s['mAP50'])}  mAP75 {f(s['mAP75'])}  ECE {f(s['ece'])}  "
            f"{s['latency_ms']:.1f} ms/image  {s['num_images']} images"
            + (f"\ncritical recall: {crit}" if crit else ""))
