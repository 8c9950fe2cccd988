"""`marauder-edge` / `python -m marauder.runtime` (in a package: `python3 -m marauder_edge`).

  run PACKAGE --source SRC      capture loop: camera index, RTSP URL, video file or image folder
  plan PACKAGE                  expected fps and energy per capture per model size and fps setting
  verify PACKAGE                check the package's sha256 manifest
  build-engines PACKAGE         build and check TensorRT engines on this device
  detect PACKAGE IMAGE...       detections of a few images as JSON
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from .errors import EdgeError

log = logging.getLogger("marauder_edge")


def _pipeline(args, apply_thresholds=True):
    from .pipeline import EdgePipeline

    return EdgePipeline(args.package, backend=args.backend, apply_thresholds=apply_thresholds,
                        verify=not args.no_verify, threads=args.threads)


def cmd_run(args) -> int:
    from .capture import open_source
    from .loop import run_capture

    pipeline = _pipeline(args)
    cfg = pipeline.config
    capture = cfg.capture
    fps = args.fps if args.fps is not None else float(capture.get("target_fps", 5.0))
    duration = args.duration if args.duration is not None else float(capture.get("capture_duration", 30.0))
    if fps <= 0 or duration <= 0:
        raise EdgeError(f"fps ({fps}) and duration ({duration} s) must be positive")
    energy = dict(cfg.energy)
    if args.power_mode:
        energy["power_mode"] = args.power_mode
    out = args.out or os.path.join("captures", "capture")
    source = open_source(args.source, realtime=not args.no_realtime)
    summary = run_capture(pipeline, source, out, fps, duration, energy,
                          min_fps=float(capture.get("min_fps", 1.0)), save_annotated=args.save_frames,
                          max_frames=args.max_frames)
    print(json.dumps(summary, indent=2))
    return 0


def cmd_plan(args) -> int:
    from .config import load_deployment_config
    from .plan import format_table, measure_busy_s, model_size_letter, plan_rows

    cfg = load_deployment_config(args.package)
    capture = cfg.capture
    energy = dict(cfg.energy)
    if args.power_mode:
        energy["power_mode"] = args.power_mode
    if args.latency_ms is not None:
        busy = args.latency_ms / 1000.0
    else:
        busy = measure_busy_s(_pipeline(args))
    target = float(capture.get("target_fps", 5.0))
    fps_settings = args.fps or sorted({target, 5.0, 3.0, 2.0, 1.0}, reverse=True)
    duration = float(capture.get("capture_duration", 30.0))
    durations = args.duration or sorted({duration, 20.0}, reverse=True)
    letter = model_size_letter(" ".join(m.architecture for m in cfg.models))
    budget = float(energy.get("energy_budget_wh", 1.0))
    rows = plan_rows(busy, len(cfg.models), letter, energy, fps_settings, durations, budget)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(format_table(rows, budget, energy.get("power_mode", "MAXN")))
        print("busy time {} on this machine ({}); pass --latency-ms with a time measured on the Jetson "
              "to plan for it".format("given" if args.latency_ms is not None else "measured",
                                      "--latency-ms" if args.latency_ms is not None else "whole pipeline"))
    return 0


def cmd_verify(args) -> int:
    from .package import verify_package

    n = verify_package(args.package)
    print(f"{args.package}: {n} files match their checksums")
    return 0


def cmd_build_engines(args) -> int:
    from .build_engines import build_package_engines
    from .config import load_deployment_config
    from .package import verify_package

    verify_package(args.package)
    cfg = load_deployment_config(args.package)
    reports = build_package_engines(args.package, cfg, fp16=None if not args.no_fp16 else False,
                                    int8=True if args.int8 else None, workspace_gb=args.workspace_gb,
                                    calib_dir=args.calib_dir, use_trtexec=args.trtexec)
    print(json.dumps(reports, indent=2))
    return 0


def cmd_detect(args) -> int:
    import cv2

    pipeline = _pipeline(args, apply_thresholds=not args.all)
    out = []
    for path in args.images:
        image = cv2.imread(path)
        if image is None:
            raise EdgeError(f"{path}: not a readable image")
        dets = pipeline.predict([image])[0]
        out.append({"image": path, "detections": dets.to_records(pipeline.class_names)})
    print(json.dumps(out, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="marauder-edge", description="Marauder edge runtime (Jetson / CPU).")
    sub = parser.add_subparsers(dest="command")

    def common(p, backend=True):
        p.add_argument("package", help="deployment package folder (has deployment_config.yaml)")
        if backend:
            p.add_argument("--backend", choices=("auto", "onnx", "tensorrt"), default="auto",
                           help="auto: a built TensorRT engine when TensorRT is installed, else ONNX Runtime")
            p.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads")
            p.add_argument("--no-verify", action="store_true", help="skip the checksum check")

    p = sub.add_parser("run", help="run the capture loop")
    common(p)
    p.add_argument("--source", required=True, help="camera index, RTSP/HTTP URL, video file or image folder")
    p.add_argument("--out", default=None, help="output folder (default: captures/capture)")
    p.add_argument("--fps", type=float, default=None, help="override capture.target_fps")
    p.add_argument("--duration", type=float, default=None, help="override capture.capture_duration (s)")
    p.add_argument("--power-mode", default=None, help="override energy.power_mode")
    p.add_argument("--save-frames", action="store_true", help="also write annotated JPEG frames")
    p.add_argument("--max-frames", type=int, default=None)
    p.add_argument("--no-realtime", action="store_true", help="video files: every frame, not real time")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("plan", help="expected fps and energy per capture")
    common(p)
    p.add_argument("--latency-ms", type=float, default=None, help="busy ms per frame (default: measure here)")
    p.add_argument("--fps", type=float, nargs="+", default=None)
    p.add_argument("--duration", type=float, nargs="+", default=None)
    p.add_argument("--power-mode", default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("verify", help="check the package checksums")
    common(p, backend=False)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("build-engines", help="build TensorRT engines from models/*.onnx on this device")
    common(p, backend=False)
    p.add_argument("--no-fp16", action="store_true")
    p.add_argument("--int8", action="store_true", help="INT8 with the package's calibration images")
    p.add_argument("--calib-dir", default=None)
    p.add_argument("--workspace-gb", type=float, default=None)
    p.add_argument("--trtexec", action="store_true", help="use trtexec instead of the Python API")
    p.set_defaults(func=cmd_build_engines)

    p = sub.add_parser("detect", help="detect objects in images, print JSON")
    common(p)
    p.add_argument("images", nargs="+")
    p.add_argument("--all", action="store_true", help="keep detections below the per-class thresholds")
    p.set_defaults(func=cmd_detect)
    return parser


def main(argv=None) -> int:
    logging.basicConfig(level=os.environ.get("MARAUDER_EDGE_LOG", "INFO"),
                        format="%(asctime)s %(levelname)s %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except EdgeError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
