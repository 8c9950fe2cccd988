"""`marauder export`: PyTorch -> ONNX (-> TensorRT FP16 where installed), validation, Jetson package."""

from __future__ import annotations

from pathlib import Path

from ..pipeline.declare import Stage, deployed_weights, read_json

HELP = "export models to ONNX/TensorRT, validate them against PyTorch and package them for the Jetson"


# what `marauder pipeline` needs to know about this stage (marauder.pipeline.declare)
def _parity(ws) -> str | None:
    data = read_json(ws.parity_report)
    return None if data is None else f"parity {'passed' if data.get('passed') else 'FAILED'}"


STAGE = Stage(
    # evaluation: --validate's split, the package's nms_iou; the training sections: what the package states
    "export", ("export", "deployment", "evaluation", "baseline_yolo", "critical_species", "ensemble",
               "tta_calibration", "general"),
    inputs=lambda ws, cfg: [*deployed_weights(ws, cfg), ws.pipeline_config],
    outputs=lambda ws, cfg: [ws.deployment_config],
    args=lambda ws, cfg: [
        "--models", *map(str, deployed_weights(ws, cfg)),
        "--names", *(p.parent.name for p in deployed_weights(ws, cfg)),  # as calibrate names them
        "--validate", "--package",
    ],
    metric=_parity,
)


def add_arguments(parser) -> None:
    parser.add_argument("--models", nargs="+", type=Path, required=True,
                        help="PyTorch checkpoints, e.g. checkpoints/ensemble/high_recall/best.pt ...")
    parser.add_argument("--names", nargs="+", default=None,
                        help="one name per model (default: each checkpoint's folder name)")
    parser.add_argument("--validate", action="store_true",
                        help="compare every export with its PyTorch original on the test split; "
                             "exit 1 when any check fails")
    parser.add_argument("--package", action="store_true",
                        help="write checkpoints/tensorrt/nano_deployment/ and nano_deployment.tar.gz")
    parser.add_argument("--data", type=Path, default=None,
                        help="dataset.yaml for --validate and the check images (default: baseline_yolo.data)")
    parser.add_argument("--pipeline-config", type=Path, default=None,
                        help="calibrated pipeline (default: checkpoints/tta_calibration/pipeline_config.yaml "
                             "when it exists)")


def run(args, ctx) -> int:
    from ..export.stage import ExportRequest, run_export
    from ..log import console

    cfg = ctx.config
    ws = ctx.workspace
    logger = ctx.start_stage("export", ws.stage_checkpoints("export"))
    names = args.names or [Path(m).parent.name or Path(m).stem for m in args.models]
    pipeline = ws.path(args.pipeline_config) if args.pipeline_config else ws.pipeline_config
    imgsz = cfg.export.imgsz
    if imgsz is None and pipeline.is_file():
        from ..infer.pipeline_spec import load_pipeline_spec

        imgsz = load_pipeline_spec(pipeline).imgsz
    imgsz = imgsz or cfg.general.imgsz
    dataset = ws.path(args.data) if args.data else ws.path(cfg.baseline_yolo.data)
    req = ExportRequest(
        models=[ws.path(m) for m in args.models], names=list(names), imgsz=int(imgsz),
        class_names=list(cfg.general.classes) or None, dataset_yaml=dataset if dataset.is_file() else None,
        validate=args.validate, package=args.package, pipeline_config=pipeline if pipeline.is_file() else None,
        variant_thresholds={k: v.confidence_threshold for k, v in cfg.ensemble.variants.items()},
        fusion=cfg.ensemble.fusion.model_dump(), raw_confidence=cfg.tta_calibration.raw_confidence,
        critical_species=list(cfg.critical_species.species),
    )
    if args.validate and req.dataset_yaml is None:
        from ..errors import MissingInputError

        raise MissingInputError(dataset, "marauder organize")
    result = run_export(req, cfg.export, cfg.deployment, cfg.evaluation, ws, nms_iou=cfg.evaluation.iou)
    for name, path in result.onnx.items():
        console.print(f"onnx    {name}: {path}", highlight=False)
    for name, path in result.engines.items():
        console.print(f"engine  {name}: {path}", highlight=False)
    if not result.engines:
        console.print("engines: none built here (no TensorRT); build them on the Jetson with "
                      "build_engines.sh from the package", highlight=False)
    if result.package_dir:
        console.print(f"package {result.package_dir}\narchive {result.archive}", highlight=False)
    if result.parity_report:
        verdict = "PASSED" if result.parity_passed else "FAILED"
        console.print(f"parity  {verdict}: {result.parity_report.with_suffix('.md')}", highlight=False)
        logger.info("parity %s", verdict)
        if not result.parity_passed:
            return 1
    return 0
