"""Edge runtime latency on CPU: bare onnxruntime vs our runtime end to end vs Ultralytics' predict.

Same ONNX model (yolov8n from its yaml, exported at 640 px, static batch 1), same real images, one run,
interleaved per image so machine load hits the three alike:
  bare          onnxruntime `session.run` on a ready blob (the floor: no decode, no pre/post-processing)
  ours          marauder runtime: JPEG decode + letterbox + run + decode/NMS + boxes to original pixels
  ultralytics   YOLO("model.onnx").predict(path) on the same file (decode included)
Target: ours <= 1.05x bare.

Then the CPU/cloud INT8 option: onnxruntime static quantization (QDQ, per-channel) of a small model
trained here, with its latency (ours, FP32 vs INT8) and its mAP50-95 cost on that model's test split.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED_DATA, row, write_result  # noqa: E402

os.environ.setdefault("YOLO_OFFLINE", "1")
IMGSZ = 640
N_IMAGES = 12
REPEATS = 3
CONF, IOU = 0.25, 0.7  # Ultralytics' predict defaults, used by all three


def images() -> list[Path]:
    folder = SHARED_DATA / "underwater-det" / "images"
    if not folder.is_dir():
        sys.exit(f"bench_runtime_latency needs {folder} (the shared real data)")
    return sorted(folder.glob("*.jpg"))[:N_IMAGES]


def export_yolov8n(work: Path) -> Path:
    from ultralytics import YOLO

    model = YOLO("yolov8n.yaml")
    pt = work / "yolov8n.pt"
    model.save(str(pt))
    from marauder.engines.ultralytics.export import export_onnx

    return export_onnx(pt, work / "yolov8n.onnx", imgsz=IMGSZ)["path"]


def latency_three_ways(onnx_path: Path, paths: list[Path]) -> dict:
    import onnxruntime as ort
    from ultralytics import YOLO

    from marauder.runtime.backends import OnnxBackend
    from marauder.runtime.detector import Detector
    from marauder.runtime.preprocess import letterbox, to_blob

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    blobs = [to_blob([letterbox(cv2.imread(str(p)), (IMGSZ, IMGSZ))[0]]) for p in paths]
    ours = Detector(OnnxBackend(onnx_path, providers=["CPUExecutionProvider"]), conf=CONF, iou=IOU)
    theirs = YOLO(str(onnx_path), task="detect")

    def bare(i):
        session.run(None, {name: blobs[i]})

    def runtime(i):
        ours.predict([cv2.imread(str(paths[i]))])

    def ultralytics(i):
        theirs.predict(str(paths[i]), imgsz=IMGSZ, conf=CONF, iou=IOU, verbose=False)

    runners = {"bare": bare, "ours": runtime, "ultralytics": ultralytics}
    for fn in runners.values():  # warm-up: sessions, allocators, Ultralytics' predictor setup
        fn(0)
        fn(1)
    times = {k: [] for k in runners}
    order = list(runners)
    for rep in range(REPEATS):
        for i in range(len(paths)):
            for k in order[rep % 3:] + order[:rep % 3]:  # rotate who goes first
                t0 = time.perf_counter()
                runners[k](i)
                times[k].append(time.perf_counter() - t0)
    ours.timing = {"preprocess": 0.0, "inference": 0.0, "postprocess": 0.0, "images": 0}
    for i in range(len(paths)):
        t0 = time.perf_counter()
        img = cv2.imread(str(paths[i]))
        ours.timing.setdefault("decode", 0.0)
        ours.timing["decode"] += time.perf_counter() - t0
        ours.predict([img])
    split = {k: round(v / len(paths) * 1000, 2) for k, v in ours.timing.items() if k != "images"}
    return {k: statistics.median(v) * 1000 for k, v in times.items()}, split


def int8_cost(work: Path) -> dict:
    """Train a small model on the deepfish set, quantize it, compare latency and mAP on its test split."""
    from marauder.data.organize import organize_dataset
    from marauder.engines.ultralytics.export import export_onnx
    from marauder.engines.ultralytics.train import train_detector
    from marauder.evaluate.runner import evaluate_model
    from marauder.export.quantize import quantize_int8
    from marauder.runtime.backends import OnnxBackend
    from marauder.runtime.detector import Detector

    src = SHARED_DATA / "deepfish-det"
    data = work / "deepfish"
    organize_dataset(source_images=src / "images", source_labels=src / "labels", output=data,
                     split=(0.7, 0.15, 0.15), seed=0)
    imgsz, epochs = 160, 8
    t0 = time.perf_counter()
    trained = train_detector("yolov8n", data / "dataset.yaml", work / "train", epochs=epochs, imgsz=imgsz,
                             batch=16, device="cpu", workers=0, amp=False, overrides={"val": False})
    train_s = time.perf_counter() - t0
    fp32 = export_onnx(trained.last, work / "fish.onnx", imgsz=imgsz)["path"]
    calib = [cv2.imread(str(p)) for p in sorted((data / "images" / "val").glob("*.jpg"))[:32]]
    int8 = quantize_int8(fp32, work / "fish.int8.onnx", calib, imgsz)
    maps, lat = {}, {}
    for label, path in (("fp32", fp32), ("int8", int8)):
        rep = evaluate_model(str(path), data / "dataset.yaml", split="test", imgsz=imgsz, conf=0.001, iou=0.6,
                             bootstrap=0, worst_examples=0, batch=16)
        maps[label] = rep.summary["mAP50-95"], rep.summary["mAP50"]
        det = Detector(OnnxBackend(path, providers=["CPUExecutionProvider"]), conf=CONF, iou=IOU)
        frames = calib[:16]
        det.predict(frames[:2])
        ts = []
        for f in frames:
            t = time.perf_counter()
            det.predict([f])
            ts.append(time.perf_counter() - t)
        lat[label] = statistics.median(ts) * 1000
    return {"maps": maps, "latency": lat, "imgsz": imgsz, "epochs": epochs, "train_s": train_s,
            "sizes_mb": {"fp32": fp32.stat().st_size / 2**20, "int8": int8.stat().st_size / 2**20}}


def main() -> int:
    paths = images()
    with tempfile.TemporaryDirectory(prefix="bench_runtime_") as tmp:
        work = Path(tmp)
        onnx_path = export_yolov8n(work)
        med, split = latency_three_ways(onnx_path, paths)
        q = int8_cost(work)
    note = f"{len(paths)} underwater-det JPEGs (1024x768) x {REPEATS}, yolov8n.yaml ONNX {IMGSZ}px, median per image"
    rows = [
        row("per-image latency: ours end to end vs bare session.run", round(med["ours"], 2), round(med["bare"], 2),
            "onnxruntime session.run (blob ready)", "ms", "<= 1.05x", note + f"; ours split (ms/img): {split}",
            higher_is_better=False),
        row("per-image latency: ours end to end vs Ultralytics predict(ONNX)", round(med["ours"], 2),
            round(med["ultralytics"], 2), "ultralytics YOLO(onnx).predict", "ms", "< 1.0x", note,
            higher_is_better=False),
        row("per-image latency: Ultralytics predict(ONNX) vs bare session.run", round(med["ultralytics"], 2),
            round(med["bare"], 2), "onnxruntime session.run (blob ready)", "ms", "", "the peer's own overhead",
            higher_is_better=False),
        row("INT8 ONNX latency (ours end to end) vs FP32", round(q["latency"]["int8"], 2),
            round(q["latency"]["fp32"], 2), "same model FP32", "ms", "< 1.0x",
            f"yolov8n trained {q['epochs']} epochs at {q['imgsz']}px on deepfish-det ({q['train_s']:.0f}s); "
            f"size {q['sizes_mb']['int8']:.1f} vs {q['sizes_mb']['fp32']:.1f} MB", higher_is_better=False),
        row("INT8 ONNX mAP50-95 vs FP32 (deepfish-det test)", round(q["maps"]["int8"][0], 4),
            round(q["maps"]["fp32"][0], 4), "same model FP32", "mAP50-95", "cost <= 0.01",
            f"mAP50 {q['maps']['int8'][1]:.4f} vs {q['maps']['fp32'][1]:.4f}"),
    ]
    write_result("runtime_latency", "Edge runtime per-image latency on CPU and the INT8 ONNX option", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
