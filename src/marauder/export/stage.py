"""The export stage: ONNX for every model, engines where possible, validation, the Jetson package."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2

from ..config.sections.deploy import DeploymentConfig, EvaluationConfig, ExportConfig
from ..errors import DataError, MarauderError, MissingInputError
from ..fsio import list_images
from ..log import get_logger, progress
from ..runtime.package import sha256_of
from ..workspace import Workspace

log = get_logger("export")


@dataclass
class ExportRequest:
    models: list[Path]
    names: list[str]
    imgsz: int
    class_names: list[str] | None = None  # None: the checkpoints' own
    dataset_yaml: Path | None = None  # for --validate and the check images
    validate: bool = False
    package: bool = False
    pipeline_config: Path | None = None  # calibrated pipeline; None: ensemble settings
    variant_thresholds: dict[str, float] = field(default_factory=dict)
    fusion: dict = field(default_factory=dict)
    raw_confidence: float = 0.01
    critical_species: list[str] = field(default_factory=list)


@dataclass
class ExportResult:
    onnx: dict[str, Path]
    engines: dict[str, Path]
    parity_passed: bool | None = None
    parity_report: Path | None = None
    package_dir: Path | None = None
    archive: Path | None = None
    int8_onnx: dict[str, Path] = field(default_factory=dict)


def check_request(req: ExportRequest) -> None:
    if not req.models:
        raise MarauderError("no models given: pass --models A.pt [B.pt ...]")
    if len(req.names) != len(req.models):
        raise MarauderError(f"{len(req.models)} models but {len(req.names)} names: give one --names entry per model")
    if len(set(req.names)) != len(req.names):
        raise MarauderError(f"--names must be unique, got {req.names}")
    for path in req.models:
        if not Path(path).is_file():
            raise MissingInputError(path, "marauder train-ensemble")
        if Path(path).suffix != ".pt":
            raise MarauderError("expected a PyTorch .pt checkpoint", file=str(path))


def check_images_of(dataset_yaml: Path | None, split: str, count: int) -> list[Path]:
    """A fixed, deterministic image set: the first `count` images of the split, by name."""
    if dataset_yaml is None or not Path(dataset_yaml).is_file():
        return []
    from ..data.dataset import load_dataset_yaml, split_images

    spec = load_dataset_yaml(dataset_yaml)
    if not spec.has_split(split):
        return []
    return split_images(spec, split)[:count]


def read_images(paths: list[Path]) -> list:
    out = []
    for p in paths:
        img = cv2.imread(str(p))
        if img is None:
            raise DataError("cannot decode image", file=str(p))
        out.append(img)
    return out


def run_export(req: ExportRequest, cfg: ExportConfig, deploy: DeploymentConfig, eval_cfg: EvaluationConfig,
               workspace: Workspace, *, nms_iou: float = 0.6) -> ExportResult:
    from ..engines.ultralytics.export import export_onnx
    from . import tensorrt as trt_export
    from .deployment_config import build_deployment_config, choices_from_config, choices_from_pipeline
    from .package import archive, build_package
    from .parity import validate_model, write_reports

    check_request(req)
    root = workspace.stage_checkpoints("export")
    onnx_dir, engine_dir = root / "models", root / "engines"
    if req.validate and (req.dataset_yaml is None or not Path(req.dataset_yaml).is_file()):
        raise MissingInputError(req.dataset_yaml or workspace.dataset_yaml, "marauder organize")

    # 1. ONNX
    onnx_files, class_names, architectures = {}, None, {}
    for name, weights in progress(list(zip(req.names, req.models)), "export ONNX"):
        info = export_onnx(weights, onnx_dir / f"{name}.onnx", imgsz=req.imgsz, opset=cfg.opset,
                           dynamic=cfg.dynamic_batch, simplify=cfg.simplify, batch=cfg.batch)
        if class_names is not None and info["class_names"] != class_names:
            raise MarauderError(f"{weights} has classes {info['class_names']} but the other models have "
                                f"{class_names}; an ensemble needs one class list")
        class_names = info["class_names"]
        onnx_files[name] = info["path"]
        architectures[name] = info["architecture"]
        log.info("ONNX %s: %s (opset %d, %s batch, %d px)", name, info["path"], cfg.opset,
                 "dynamic" if cfg.dynamic_batch else f"static {cfg.batch}", req.imgsz)
    if req.class_names and list(req.class_names) != class_names:
        log.warning("checkpoints' classes %s differ from general.classes %s; the checkpoints' are used",
                    class_names, req.class_names)

    check_paths = check_images_of(req.dataset_yaml, eval_cfg.split, cfg.check_images)
    calibration_images = []
    if cfg.int8 or cfg.onnx_int8:
        folder = Path(cfg.int8_calibration_images) if cfg.int8_calibration_images else None
        if folder is not None and not folder.is_dir():
            raise MarauderError("export.int8_calibration_images is not a folder", file=str(folder))
        calibration_images = list_images(folder, recursive=True)[:cfg.int8_calibration_max] if folder else []
        if not calibration_images and req.dataset_yaml is not None:
            calibration_images = check_images_of(req.dataset_yaml, "val", cfg.int8_calibration_max)
        if not calibration_images:
            raise MarauderError("INT8 needs calibration images: set export.int8_calibration_images to a folder")

    # 2. TensorRT where installed; 3. optional INT8 ONNX for CPU serving
    engines = trt_export.build_engines(onnx_files, engine_dir, cfg, imgsz=req.imgsz, class_names=class_names,
                                       calibration_images=calibration_images)
    int8_onnx = {}
    if cfg.onnx_int8:
        from .quantize import quantize_int8

        calib = read_images(calibration_images[:64])
        for name, path in onnx_files.items():
            int8_onnx[name] = quantize_int8(path, onnx_dir / f"{name}.int8.onnx", calib, req.imgsz)
            log.info("INT8 ONNX %s: %s", name, int8_onnx[name])
    result = ExportResult(onnx_files, engines, int8_onnx=int8_onnx)

    # 4. validation
    reports = {}
    if req.validate:
        images = read_images(check_paths)
        results = []
        for name, weights in zip(req.names, req.models):
            for exported in [onnx_files[name]] + ([engines[name]] if name in engines else []):
                results.append(validate_model(name, Path(weights), exported, dataset_yaml=req.dataset_yaml,
                                              images=images, cfg=cfg, eval_cfg=eval_cfg, imgsz=req.imgsz))
        json_path, md_path = write_reports(results, root / "validation", cfg)
        result.parity_passed = all(r.passed for r in results)
        result.parity_report = json_path
        reports = {"parity_report.json": json_path, "parity_report.md": md_path}

    # 5. package
    if req.package:
        if req.pipeline_config is not None and Path(req.pipeline_config).is_file():
            choices = choices_from_pipeline(Path(req.pipeline_config), req.names)
            if choices.imgsz and choices.imgsz != req.imgsz:
                log.warning("pipeline_config.yaml was calibrated at %d px but export.imgsz is %d px",
                            choices.imgsz, req.imgsz)
        else:
            log.info("no calibrated pipeline (%s): per-class thresholds default to %.2f, no calibration",
                     req.pipeline_config, deploy.default_threshold)
            choices = choices_from_config(req.names, req.variant_thresholds, req.fusion, req.raw_confidence,
                                          class_names, deploy.default_threshold, req.critical_species)
        models = []
        for name in req.names:
            models.append({"name": name, "onnx": f"models/{name}.onnx", "engine": f"engines/{name}.engine",
                           "architecture": architectures.get(name, ""), "input_hw": [req.imgsz, req.imgsz],
                           "batch": cfg.batch, "dynamic_batch": cfg.dynamic_batch,
                           "onnx_sha256": sha256_of(onnx_files[name])})
        samples = [f"samples/{i:02d}_{p.name}" for i, p in enumerate(check_paths)]
        config = build_deployment_config(
            class_names=class_names, imgsz=req.imgsz, models=models, choices=choices, export_cfg=cfg,
            deploy_cfg=deploy, nms_iou=nms_iou, check_images=samples,
            int8_calibration_dir="calibration_images" if cfg.int8 and calibration_images else None)
        extra = {f"models/{n}.int8.onnx": p for n, p in int8_onnx.items()}
        dest = build_package(workspace.deployment_dir, onnx_files=onnx_files, engine_files=engines, config=config,
                             check_images=check_paths, calibration_images=calibration_images if cfg.int8 else [],
                             reports=reports, extra_models=extra)
        result.package_dir = dest
        result.archive = archive(dest)
        log.info("package: %s (%s)", dest, result.archive)
    return result
