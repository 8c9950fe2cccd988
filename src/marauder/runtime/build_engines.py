"""Build TensorRT engines from a package's ONNX models, on the device that will run them.

TensorRT engines are specific to the GPU model and TensorRT version that build them, so the export
ships ONNX files and this builder; run it once on the Jetson (./build_engines.sh). It uses the
TensorRT Python API when importable, else `trtexec`; writes engines/<name>.engine with a sidecar
<name>.engine.json (GPU, compute capability, TensorRT version, input size, class names), then checks
every engine: it loads it, runs the package's check images through it and compares the detections
with ONNX Runtime's when that is installed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess

import numpy as np

from .backends import OnnxBackend, device_fingerprint, engine_meta_path
from .errors import BackendUnavailable, EdgeError
from .package import write_manifest
from .preprocess import letterbox, to_blob

log = logging.getLogger("marauder_edge")


def _calibrator_class(trt, cudart, images, input_hw, cache_path):
    """An IInt8EntropyCalibrator2 feeding letterboxed calibration images, one per batch."""
    import cv2

    class Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.files = list(images)
            self.index = 0
            nbytes = 3 * input_hw[0] * input_hw[1] * 4
            err, self.device = cudart.cudaMalloc(nbytes)
            if int(err) != 0:
                raise BackendUnavailable(f"cudaMalloc failed for INT8 calibration: {err}")

        def get_batch_size(self):
            return 1

        def get_batch(self, names):
            while self.index < len(self.files):
                img = cv2.imread(self.files[self.index])
                self.index += 1
                if img is None:
                    continue
                blob = np.ascontiguousarray(to_blob([letterbox(img, input_hw)[0]]))
                cudart.cudaMemcpy(self.device, blob.ctypes.data, blob.nbytes,
                                  cudart.cudaMemcpyKind.cudaMemcpyHostToDevice)
                return [int(self.device)]
            return None

        def read_calibration_cache(self):
            if os.path.isfile(cache_path):
                with open(cache_path, "rb") as fh:
                    return fh.read()
            return None

        def write_calibration_cache(self, cache):
            with open(cache_path, "wb") as fh:
                fh.write(cache)

    return Calibrator()


def build_with_python_api(onnx_path, engine_path, input_hw, fp16=True, int8=False, calib_images=(),
                          workspace_gb=2.0, batch=1, dynamic_batch=False):
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):  # implicit in TensorRT 10
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    with open(onnx_path, "rb") as fh:
        if not parser.parse(fh.read()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise EdgeError(f"{onnx_path}: TensorRT cannot parse this ONNX file: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if fp16 and builder.platform_has_fast_fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    if int8:
        if not builder.platform_has_fast_int8:
            raise EdgeError("this GPU has no fast INT8; build FP16 engines instead (int8: false)")
        if not calib_images:
            raise EdgeError("INT8 needs calibration images (export.int8_calibration_images)")
        from .backends import _cudart

        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = _calibrator_class(trt, _cudart(), calib_images, input_hw,
                                                   str(engine_path) + ".calib.cache")
    inp = network.get_input(0)
    if dynamic_batch or inp.shape[0] == -1:
        profile = builder.create_optimization_profile()
        c, h, w = 3, input_hw[0], input_hw[1]
        profile.set_shape(inp.name, (1, c, h, w), (max(1, batch), c, h, w), (max(1, batch), c, h, w))
        config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EdgeError(f"{onnx_path}: TensorRT engine build failed (see the TensorRT log above)")
    tmp = str(engine_path) + ".tmp"
    with open(tmp, "wb") as fh:
        fh.write(serialized)
    os.replace(tmp, engine_path)


def build_with_trtexec(onnx_path, engine_path, fp16=True, workspace_gb=2.0):
    exe = shutil.which("trtexec") or next((p for p in ("/usr/src/tensorrt/bin/trtexec",) if os.path.isfile(p)), None)
    if exe is None:
        raise BackendUnavailable("neither the TensorRT Python API nor trtexec is available: install TensorRT "
                                 "(JetPack ships both)")
    cmd = [exe, f"--onnx={onnx_path}", f"--saveEngine={engine_path}",
           f"--memPoolSize=workspace:{int(workspace_gb * 1024)}M"]
    if fp16:
        cmd.append("--fp16")
    log.info("running %s", " ".join(cmd))
    result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        raise EdgeError(f"trtexec failed for {onnx_path}:\n{result.stdout[-2000:]}")


def check_engine(engine_path, onnx_path, images, conf=0.25, iou=0.6) -> dict:
    """Run the engine on check images; compare with ONNX Runtime when present. Returns the comparison."""
    import cv2

    from .backends import TensorRTBackend
    from .detector import Detector

    engine = Detector(TensorRTBackend(engine_path), conf=conf, iou=iou)
    frames = [f for f in (cv2.imread(p) for p in images) if f is not None]
    if not frames:
        frames = [np.full((480, 640, 3), 114, np.uint8)]
    trt_dets = engine.predict(frames)
    report = {"engine": os.path.basename(engine_path), "images": len(frames),
              "detections": int(sum(len(d) for d in trt_dets))}
    try:
        reference = Detector(OnnxBackend(onnx_path, providers=["CPUExecutionProvider"]), conf=conf, iou=iou)
    except BackendUnavailable:
        report["compared_with_onnxruntime"] = False
        return report
    ref_dets = reference.predict(frames)
    count_diff = max(abs(len(a) - len(b)) for a, b in zip(trt_dets, ref_dets))
    score_diff = 0.0
    for a, b in zip(trt_dets, ref_dets):
        n = min(len(a), len(b))
        if n:
            score_diff = max(score_diff, float(np.abs(np.sort(a.scores)[::-1][:n] - np.sort(b.scores)[::-1][:n]).max()))
    report.update({"compared_with_onnxruntime": True, "max_count_diff": int(count_diff),
                   "max_score_diff": round(score_diff, 5)})
    return report


def build_package_engines(package_dir, config, fp16=None, int8=None, workspace_gb=None,
                          calib_dir=None, use_trtexec=False) -> list:
    """Build and check an engine per model in the package (`config`: its `PipelineSpec`); record them in
    engines/SHA256SUMS."""
    try:
        import tensorrt  # noqa: F401
        have_api = True
    except ImportError:
        have_api = False
    export = config.export
    fp16 = export.get("fp16", True) if fp16 is None else fp16
    int8 = export.get("int8", False) if int8 is None else int8
    workspace_gb = float(export.get("workspace_gb", 2.0) if workspace_gb is None else workspace_gb)
    check_images = [os.path.join(package_dir, p) for p in config.check_images]
    calib = []
    folder = calib_dir or (os.path.join(package_dir, export["int8_calibration_dir"])
                           if export.get("int8_calibration_dir") else None)
    if int8 and folder and os.path.isdir(folder):
        calib = sorted(os.path.join(folder, f) for f in os.listdir(folder)
                       if f.lower().endswith((".jpg", ".jpeg", ".png")))
    if not have_api and (use_trtexec is False) and shutil.which("trtexec") is None \
            and not os.path.isfile("/usr/src/tensorrt/bin/trtexec"):
        raise BackendUnavailable("TensorRT is not installed here, so no engine can be built; on the Jetson "
                                 "(JetPack includes TensorRT) run ./build_engines.sh; elsewhere run the ONNX "
                                 "models with onnxruntime")
    if int8 and (use_trtexec or not have_api):
        # build_with_trtexec has no calibrator: it would write an FP16 engine recorded as INT8
        raise EdgeError("INT8 engines need the TensorRT Python API (for calibration); build without --int8 "
                        "or where `import tensorrt` works")
    engines_dir = os.path.join(package_dir, "engines")
    os.makedirs(engines_dir, exist_ok=True)
    fingerprint = device_fingerprint()
    reports, built = [], []
    for entry in config.models:
        onnx = os.path.join(package_dir, entry.onnx)
        engine = os.path.join(package_dir, entry.engine or os.path.join("engines", entry.name + ".engine"))
        hw = tuple(entry.input_hw or (config.imgsz, config.imgsz))
        log.info("building %s from %s (fp16=%s int8=%s workspace %.1f GB)", engine, onnx, fp16, int8, workspace_gb)
        if have_api and not use_trtexec:
            build_with_python_api(onnx, engine, hw, fp16=fp16, int8=int8, calib_images=calib,
                                  workspace_gb=workspace_gb, batch=entry.batch or 1,
                                  dynamic_batch=bool(entry.dynamic_batch))
        else:
            build_with_trtexec(onnx, engine, fp16=fp16, workspace_gb=workspace_gb)
        meta = dict(fingerprint, names=config.class_names, imgsz=list(hw), fp16=bool(fp16), int8=bool(int8),
                    onnx_sha256=entry.onnx_sha256)
        with open(engine_meta_path(engine), "w", encoding="utf-8") as fh:
            json.dump(meta, fh, indent=2)
        report = check_engine(engine, onnx, check_images)
        log.info("checked %s: %s", engine, report)
        reports.append(report)
        built += [os.path.relpath(engine, engines_dir), os.path.relpath(engine_meta_path(engine), engines_dir)]
    write_manifest(engines_dir, built)
    return reports
