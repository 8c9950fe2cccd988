"""Edge runtime latency on CPU: bare onnxruntime vs our runtime end to end vs Ultralytics' predict.

Same ONNX model (yolov8n from its yaml, exported at 640 px, static batch 1), same real images, one run,
interleaved per image so machine load hits the three alike:
  bare          onnxruntime `session.run` on a ready blob (the floor: no decode, no pre/post-processing)
  ours          marauder runtime: JPEG decode + letterbox + run + decode/NMS + boxes to original pixels
  ultralytics   YOLO("model.onnx").predict(path) on the same file (decode included)
Target: ours <= 1.05x bare.

Then the CPU/cloud INT8 option: onnxruntime static quantization (QDQ, per-channel) of a small model
trained here (synthetic shapes, 64 px: learnable from scratch in CPU minutes), with its latency (ours,
FP32 vs INT8) and its mAP50-95 cost on that model's test split.
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
N_IMAGES = 10
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

    frames = [cv2.imread(str(p)) for p in paths]

    def bare(i):
        session.run(None, {name: blobs[i]})

    def ours_file(i):
        ours.predict([cv2.imread(str(paths[i]))])

    def ours_frame(i):
        ours.predict([frames[i]])

    def ultra_file(i):
        theirs.predict(str(paths[i]), imgsz=IMGSZ, conf=CONF, iou=IOU, verbose=False)

    def ultra_frame(i):
        theirs.predict(frames[i], imgsz=IMGSZ, conf=CONF, iou=IOU, verbose=False)

    runners = {"bare": bare, "ours_file": ours_file, "ours_frame": ours_frame, "ultralytics_file": ultra_file,
               "ultralytics_frame": ultra_frame}
    for fn in runners.values():  # warm-up: sessions, allocators, Ultralytics' predictor setup
        fn(0)
        fn(1)
    times = {k: [] for k in runners}
    order = list(runners)
    # One runner at a time over all images (blocks, rotated per repeat). Interleaving runners per
    # image made each ONNX Runtime session compete with the previous session's still-spinning
    # thread pool, which penalised whichever session had just been switched to.
    for rep in range(REPEATS):
        shift = rep % len(order)
        for k in order[shift:] + order[:shift]:
            runners[k](0)  # let the previous session's threads go idle
            for i in range(len(paths)):
                t0 = time.perf_counter()
                runners[k](i)
                times[k].append(time.perf_counter() - t0)
    ours.timing = {"preprocess": 0.0, "inference": 0.0, "postprocess": 0.0, "images": 0}
    decode_s = 0.0
    for i in range(len(paths)):
        t0 = time.perf_counter()
        img = cv2.imread(str(paths[i]))
        decode_s += time.perf_counter() - t0
        ours.predict([img])
    split = {k: round(v / len(paths) * 1000, 2) for k, v in ours.timing.items() if k != "images"}
    split["jpeg_decode"] = round(decode_s / len(paths) * 1000, 2)
    split["min_ms"] = {k: round(min(v) * 1000, 1) for k, v in times.items()}  # least disturbed by load
    return {k: statistics.median(v) * 1000 for k, v in times.items()}, split


def make_shapes_dataset(root: Path, n: int = 256, size: int = 64, seed: int = 0) -> Path:
    """Filled ellipses on noise, one class: a set a yolov8n learns from scratch in ~2 CPU minutes.

    (From scratch on the real sets, a CPU budget of minutes leaves mAP at 0, so no cost could be seen.)
    """
    rng = np.random.default_rng(seed)
    counts = {"train": int(n * 0.7), "val": int(n * 0.15)}
    counts["test"] = n - counts["train"] - counts["val"]
    for split, count in counts.items():
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in range(count):
            img = rng.normal(60, 20, (size, size, 3)).clip(0, 255).astype(np.uint8)
            lines = []
            for _ in range(rng.integers(1, 4)):
                w, h = rng.integers(16, 34, 2)
                x, y = rng.integers(0, size - w), rng.integers(0, size - h)
                cv2.ellipse(img, (int(x + w / 2), int(y + h / 2)), (int(w / 2), int(h / 2)), 0, 0, 360,
                            (40, 200, 240), -1)
                lines.append(f"0 {(x + w / 2) / size:.6f} {(y + h / 2) / size:.6f} {w / size:.6f} {h / size:.6f}")
            cv2.imwrite(str(root / "images" / split / f"{i:04d}.jpg"), img)
            (root / "labels" / split / f"{i:04d}.txt").write_text("\n".join(lines) + "\n")
    (root / "dataset.yaml").write_text(f"path: {root}\ntrain: images/train\nval: images/val\ntest: images/test\n"
                                       "names:\n  0: ellipse\n")
    return root / "dataset.yaml"


def int8_cost(work: Path) -> dict:
    """Train a small model, quantize it, compare latency and mAP on its test split."""
    from marauder.engines.ultralytics.export import export_onnx
    from marauder.engines.ultralytics.train import train_detector
    from marauder.evaluate.runner import evaluate_model
    from marauder.export.quantize import quantize_int8
    from marauder.runtime.backends import OnnxBackend
    from marauder.runtime.detector import Detector

    data_yaml = make_shapes_dataset(work / "shapes")
    data = data_yaml.parent
    imgsz, epochs = 64, 14
    t0 = time.perf_counter()
    trained = train_detector("yolov8n", data_yaml, work / "train", epochs=epochs, imgsz=imgsz, batch=16,
                             device="cpu", workers=0, amp=False,
                             overrides={"val": False, "mosaic": 0.0, "warmup_epochs": 0, "lr0": 0.02})
    train_s = time.perf_counter() - t0
    fp32 = export_onnx(trained.last, work / "fish.onnx", imgsz=imgsz)["path"]
    calib = [cv2.imread(str(p)) for p in sorted((data / "images" / "val").glob("*.jpg"))[:32]]
    int8 = quantize_int8(fp32, work / "fish.int8.onnx", calib, imgsz)
    maps, lat = {}, {}
    for label, path in (("fp32", fp32), ("int8", int8)):
        rep = evaluate_model(str(path), data_yaml, split="test", imgsz=imgsz, conf=0.001, iou=0.6,
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


def int8_latency_640(onnx_path: Path, paths: list[Path], work: Path) -> dict:
    """FP32 vs INT8 latency of the 640 px yolov8n through our runtime, interleaved, on real images."""
    from marauder.export.quantize import quantize_int8
    from marauder.runtime.backends import OnnxBackend
    from marauder.runtime.detector import Detector

    frames = [cv2.imread(str(p)) for p in paths]
    int8 = quantize_int8(onnx_path, work / "yolov8n.int8.onnx", frames[:8], IMGSZ)
    dets = {k: Detector(OnnxBackend(p, providers=["CPUExecutionProvider"]), conf=CONF, iou=IOU)
            for k, p in (("fp32", onnx_path), ("int8", int8))}
    times = {k: [] for k in dets}
    for d in dets.values():
        d.predict(frames[:1])
    for i, f in enumerate(frames):
        for k in (("fp32", "int8") if i % 2 else ("int8", "fp32")):
            t0 = time.perf_counter()
            dets[k].predict([f])
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) * 1000 for k, v in times.items()}


def main() -> int:
    paths = images()
    with tempfile.TemporaryDirectory(prefix="bench_runtime_") as tmp:
        work = Path(tmp)
        onnx_path = export_yolov8n(work)
        med, split = latency_three_ways(onnx_path, paths)
        lat640 = int8_latency_640(onnx_path, paths, work)
        q = int8_cost(work)
    note = (f"{len(paths)} underwater-det JPEGs (1024x768) x {REPEATS}, yolov8n.yaml ONNX {IMGSZ}px, "
            f"median per image, interleaved; ours split (ms/img): {split}")
    bare = round(med["bare"], 2)
    rows = [
        row("latency from decoded frames (camera input): ours vs bare session.run", round(med["ours_frame"], 2),
            bare, "onnxruntime session.run (blob ready)", "ms", "<= 1.05x", note, higher_is_better=False),
        row("latency from JPEG files (decode included): ours vs bare session.run", round(med["ours_file"], 2),
            bare, "onnxruntime session.run (blob ready)", "ms", "<= 1.05x", note, higher_is_better=False),
        row("latency from decoded frames: ours vs Ultralytics predict(ONNX)", round(med["ours_frame"], 2),
            round(med["ultralytics_frame"], 2), "ultralytics YOLO(onnx).predict(array)", "ms", "< 1.0x", note,
            higher_is_better=False),
        row("latency from JPEG files: ours vs Ultralytics predict(ONNX)", round(med["ours_file"], 2),
            round(med["ultralytics_file"], 2), "ultralytics YOLO(onnx).predict(path)", "ms", "< 1.0x", note,
            higher_is_better=False),
        row("latency from JPEG files: Ultralytics predict(ONNX) vs bare session.run", round(med["ultralytics_file"], 2),
            bare, "onnxruntime session.run (blob ready)", "ms", "", "the peer's own overhead",
            higher_is_better=False),
        row("INT8 ONNX latency at 640 px (ours, decoded frames) vs FP32", round(lat640["int8"], 2),
            round(lat640["fp32"], 2), "same yolov8n FP32", "ms", "< 1.0x",
            f"{len(paths)} underwater-det images, median; calibrated on 8 of them", higher_is_better=False),
        row("INT8 ONNX latency at 64 px (trained model) vs FP32", round(q["latency"]["int8"], 2),
            round(q["latency"]["fp32"], 2), "same model FP32", "ms", "< 1.0x",
            f"yolov8n trained {q['epochs']} epochs at {q['imgsz']}px on synthetic shapes ({q['train_s']:.0f}s); "
            f"size {q['sizes_mb']['int8']:.1f} vs {q['sizes_mb']['fp32']:.1f} MB", higher_is_better=False),
        row("INT8 ONNX mAP50-95 vs FP32 (synthetic shapes test split)", round(q["maps"]["int8"][0], 4),
            round(q["maps"]["fp32"][0], 4), "same model FP32", "mAP50-95", "cost <= 0.01",
            f"mAP50 {q['maps']['int8'][1]:.4f} vs {q['maps']['fp32'][1]:.4f}"),
    ]
    write_result("runtime_latency", "Edge runtime per-image latency on CPU and the INT8 ONNX option", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
