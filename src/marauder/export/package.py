"""Assemble checkpoints/tensorrt/nano_deployment/ and its .tar.gz.

The package is self-sufficient on the Jetson: ONNX models (engines only run on the GPU and TensorRT
version that built them, so they are built there by build_engines.sh), the edge runtime's source
(numpy + OpenCV + onnxruntime/TensorRT, no torch), deployment_config.yaml, check images, scripts, and
SHA256SUMS over every file. The folder appears in one rename; the archive is written beside it.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
from pathlib import Path

import yaml

from ..fsio import atomic_directory
from ..runtime.config import CONFIG_NAME, JSON_TWIN
from ..runtime.package import MANIFEST, sha256_of, write_manifest

RUNTIME_SRC = Path(__file__).resolve().parents[1] / "runtime"
RUNTIME_PACKAGE = "marauder_edge"  # the runtime's import name inside a package

BUILD_SH = """#!/usr/bin/env bash
# Build TensorRT engines for THIS device from models/*.onnx, then check them against ONNX Runtime.
# Engines only run on the GPU model and TensorRT version that built them: run this on the Jetson.
# Options: --int8 [--calib-dir DIR]  --no-fp16  --workspace-gb N  --trtexec
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHONPATH="$HERE/runtime${PYTHONPATH:+:$PYTHONPATH}" exec python3 -m marauder_edge build-engines "$HERE" "$@"
"""

BUILD_PY = '''#!/usr/bin/env python3
"""Build and check TensorRT engines for this device (same as build_engines.sh)."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "runtime"))
from marauder_edge.__main__ import main  # noqa: E402

sys.exit(main(["build-engines", HERE] + sys.argv[1:]))
'''

RUN_SH = """#!/usr/bin/env bash
# ./run_edge.sh run --source 0 | plan | verify | detect IMAGE...   (the package folder is implied)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CMD="${1:-run}"; shift || true
PYTHONPATH="$HERE/runtime${PYTHONPATH:+:$PYTHONPATH}" exec python3 -m marauder_edge "$CMD" "$HERE" "$@"
"""

REQUIREMENTS = """# The edge runtime needs only these (JetPack already has TensorRT and usually OpenCV/numpy).
numpy>=1.17
opencv-python-headless>=4.2   # or the system OpenCV
onnxruntime>=1.10             # onnxruntime-gpu / the Jetson Zoo wheel on a Jetson; not needed with engines
pyyaml>=5.1                   # optional: without it deployment_config.json (same content) is read
cuda-python>=11.8             # only for TensorRT engines
"""

README = """# Marauder deployment package

Models: {models}. Classes: {classes}. Input: {imgsz} px.

1. Check the copy:            ./run_edge.sh verify        (or: sha256sum -c SHA256SUMS)
2. Build engines (Jetson):    ./build_engines.sh          (TensorRT engines are specific to the GPU
                              model and TensorRT version that build them; never copy them between devices)
3. Plan energy:               ./run_edge.sh plan
4. Capture:                   ./run_edge.sh run --source 0 --out /data/capture1
                              (source: camera index, rtsp:// URL, video file or image folder)

Without engines the runtime uses ONNX Runtime on models/*.onnx. Settings: deployment_config.yaml.
"""


def _write_text(path: Path, text: str, executable: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    if executable:
        path.chmod(0o755)


def copy_runtime(dest: Path) -> list[str]:
    """The runtime's .py files as the `marauder_edge` package (its imports are all relative)."""
    target = dest / "runtime" / RUNTIME_PACKAGE
    target.mkdir(parents=True, exist_ok=True)
    copied = []
    for src in sorted(RUNTIME_SRC.glob("*.py")):
        shutil.copy2(src, target / src.name)
        copied.append(src.name)
    return copied


def write_config(dest: Path, config: dict) -> None:
    text = "# Marauder edge deployment: read by the runtime; see docs/DEPLOYMENT_GUIDE.md\n" + yaml.safe_dump(
        config, sort_keys=False, default_flow_style=None)
    _write_text(dest / CONFIG_NAME, text)
    twin = dict(config, _yaml_sha256=sha256_of(dest / CONFIG_NAME))
    _write_text(dest / JSON_TWIN, json.dumps(twin, indent=2) + "\n")


def build_package(dest: Path, *, onnx_files: dict[str, Path], engine_files: dict[str, Path],
                  config: dict, check_images: list[Path], calibration_images: list[Path] = (),
                  reports: dict[str, Path] | None = None, extra_models: dict[str, Path] | None = None) -> Path:
    """Write the package folder atomically (replacing an old one). Returns its path."""
    dest = Path(dest)
    with atomic_directory(dest, replace=True) as tmp:
        for name, src in onnx_files.items():
            (tmp / "models").mkdir(exist_ok=True)
            shutil.copy2(src, tmp / "models" / f"{name}.onnx")
        for rel, src in (extra_models or {}).items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, tmp / rel)
        (tmp / "engines").mkdir(exist_ok=True)
        for name, src in engine_files.items():
            shutil.copy2(src, tmp / "engines" / f"{name}.engine")
            meta = Path(str(src) + ".json")
            if meta.is_file():
                shutil.copy2(meta, tmp / "engines" / f"{name}.engine.json")
        for i, src in enumerate(check_images):
            (tmp / "samples").mkdir(exist_ok=True)
            shutil.copy2(src, tmp / "samples" / f"{i:02d}_{Path(src).name}")
        for src in calibration_images:
            (tmp / "calibration_images").mkdir(exist_ok=True)
            shutil.copy2(src, tmp / "calibration_images" / Path(src).name)
        for rel, src in (reports or {}).items():
            (tmp / "reports").mkdir(exist_ok=True)
            shutil.copy2(src, tmp / "reports" / rel)
        copy_runtime(tmp)
        write_config(tmp, config)
        _write_text(tmp / "build_engines.sh", BUILD_SH, executable=True)
        _write_text(tmp / "build_engines.py", BUILD_PY, executable=True)
        _write_text(tmp / "run_edge.sh", RUN_SH, executable=True)
        _write_text(tmp / "requirements.txt", REQUIREMENTS)
        _write_text(tmp / "README.md", README.format(
            models=", ".join(m["name"] for m in config["models"]), classes=", ".join(config["class_names"]),
            imgsz=config["imgsz"]))
        files = [str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file() and p.name != MANIFEST]
        write_manifest(str(tmp), files)
    return dest


def archive(folder: Path) -> Path:
    """folder.tar.gz beside the folder (written to a temp name, then renamed)."""
    folder = Path(folder)
    out = folder.with_name(folder.name + ".tar.gz")
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        with tarfile.open(tmp, "w:gz") as tar:
            tar.add(folder, arcname=folder.name)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)  # no half-written archive left beside the package
        raise
    return out
