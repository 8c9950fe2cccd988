"""TensorRT engines on this machine, when TensorRT is installed (the same builder the Jetson runs).

Engines are tied to the GPU and TensorRT version that build them, so an engine built here is only
useful on an identical machine; the package's build_engines.sh is the way to get Jetson engines.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from ..config.sections.deploy import ExportConfig
from ..log import get_logger
from ..runtime.backends import device_fingerprint, engine_meta_path

log = get_logger("export")


def tensorrt_installed() -> bool:
    return importlib.util.find_spec("tensorrt") is not None


def build_engines(onnx_files: dict[str, Path], out_dir: Path, cfg: ExportConfig, *, imgsz: int,
                  class_names: list[str], calibration_images: list[Path] = ()) -> dict[str, Path]:
    """{name: engine path} for every ONNX file; {} (with a logged reason) without TensorRT."""
    if not tensorrt_installed():
        log.info("TensorRT is not installed here: no engines built. The package carries the ONNX models and "
                 "build_engines.sh, which builds engines on the Jetson itself (engines are GPU/TensorRT specific)")
        return {}
    from ..runtime.build_engines import build_with_python_api

    out_dir.mkdir(parents=True, exist_ok=True)
    engines = {}
    for name, onnx in onnx_files.items():
        engine = out_dir / f"{name}.engine"
        log.info("TensorRT: %s -> %s (fp16=%s, int8=%s, workspace %.1f GB)", onnx, engine, cfg.fp16, cfg.int8,
                 cfg.workspace_gb)
        build_with_python_api(str(onnx), str(engine), (imgsz, imgsz), fp16=cfg.fp16, int8=cfg.int8,
                              calib_images=[str(p) for p in calibration_images], workspace_gb=cfg.workspace_gb,
                              batch=cfg.batch, dynamic_batch=cfg.dynamic_batch)
        meta = dict(device_fingerprint(), names=class_names, imgsz=[imgsz, imgsz], fp16=cfg.fp16, int8=cfg.int8)
        Path(engine_meta_path(engine)).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        engines[name] = engine
    return engines
