"""Weighted boxes fusion: our numpy WBF (marauder.runtime.fusion, used by the training side and the edge
runtime alike) against ensemble-boxes, the library it reproduces, in the same run.

Synthetic part: input shaped like one image of an ensemble with TTA at mAP settings: 3 members x 4 views
= 12 sources of 300 boxes each (conf 0.001, Ultralytics' max_det), 5 classes, boxes jittered around 40
objects so clusters form as they do on real detections. Every run checks that both give bit-identical output.

Real part (when ../shared/data/underwater-det is there): the deployed pipeline's shape, 3 members x 4 views
(identity, hflip, vflip, rot180) on real underwater images at 640 px, members at the pipeline's
raw_confidence (0.01): the members' time (`Pipeline.predict_raw`) against the fusion's (`Pipeline.fuse_raw`)
in the same run, and ensemble-boxes on the same boxes. The members are bench_real_data's cached reference
model three times when it is built; else yolov8n with untrained weights, whose forward pass costs the
same but which finds nothing, so the fusion time it is compared with is the synthetic part's (every
source at max_det: more boxes than a trained model gives at 0.01, so an upper bound).

  python bench/bench_fusion.py [--images N] [--real-images N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED_DATA, row, write_result  # noqa: E402

IMGSZ = 640
RAW_CONFIDENCE = 0.01  # what the calibrated pipeline's members predict down to (PipelineSpec.raw_confidence)


def one_image(rng, sources: int = 12, boxes: int = 300, classes: int = 5, objects: int = 40):
    centres = rng.uniform(0.1, 0.9, (objects, 2))
    sizes = rng.uniform(0.02, 0.2, (objects, 2))
    obj_class = rng.integers(0, classes, objects)
    out = []
    for _ in range(sources):
        pick = rng.integers(0, objects, boxes)
        xy = centres[pick] + rng.normal(0, 0.01, (boxes, 2))
        wh = sizes[pick] * rng.uniform(0.85, 1.15, (boxes, 2))
        b = np.clip(np.concatenate([xy - wh / 2, xy + wh / 2], 1), 0, 1)
        labels = np.where(rng.random(boxes) < 0.8, obj_class[pick], rng.integers(0, classes, boxes))
        out.append((b, rng.uniform(0.001, 1.0, boxes), labels.astype(float)))
    return [s[0] for s in out], [s[1] for s in out], [s[2] for s in out]


def main() -> int:
    from ensemble_boxes import weighted_boxes_fusion as peer

    from marauder.runtime.fusion import weighted_boxes_fusion as ours

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--real-images", type=int, default=8)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    images = [one_image(rng) for _ in range(args.images)]
    kwargs = {"iou_thr": 0.55, "skip_box_thr": 0.001, "conf_type": "avg"}
    ours(*images[0], **kwargs), peer(*images[0], **kwargs)  # warm-up (imports, caches)
    times, exact, fused = {"ours": [], "peer": []}, True, 0
    for boxes, scores, labels in images:
        t0 = time.perf_counter()
        a = ours(boxes, scores, labels, **kwargs)
        t1 = time.perf_counter()
        b = peer(boxes, scores, labels, **kwargs)
        t2 = time.perf_counter()
        times["ours"].append(t1 - t0)
        times["peer"].append(t2 - t1)
        exact &= all(np.array_equal(x, y) for x, y in zip(a, b))
        fused += len(a[0])
    ms = {k: 1000 * float(np.median(v)) for k, v in times.items()}
    setup = f"{args.images} images x 12 sources x 300 boxes, 5 classes, ~{fused // args.images} fused boxes/image"
    rows = [row("WBF per image, median", round(ms["ours"], 2), round(ms["peer"], 2), "ensemble-boxes "
                "weighted_boxes_fusion", "ms", "faster", setup, higher_is_better=False),
            row("identical output to ensemble-boxes", int(exact), None, None, "", "1", "bit for bit, every image")]
    print(f"ours {ms['ours']:.1f} ms, ensemble-boxes {ms['peer']:.1f} ms per image, identical: {exact}")
    real_rows, real = real_pipeline(args.real_images, peer, ms)
    write_result("fusion", "Weighted boxes fusion: ours vs ensemble-boxes; fusion vs model time", rows + real_rows,
                 {"ms": ms, "exact": exact, "real": real})
    return 0 if exact and real.get("exact", True) else 1


def members_for_timing() -> tuple[list, str]:
    import bench_real_data as real

    from marauder.engines.ultralytics.predict import UltralyticsPredictor

    cached = real.reference_model("underwater-det")
    weights = cached or "yolov8n.yaml"  # built from its yaml: nothing to download
    what = f"the reference model {cached.parent.name} x 3" if cached else "yolov8n (untrained) x 3"
    members = [UltralyticsPredictor(weights, imgsz=IMGSZ, conf=RAW_CONFIDENCE, device="cpu", batch=16)
               for _ in range(3)]
    return members, what


def real_pipeline(n_images: int, peer, synthetic_ms: dict) -> tuple[list, dict]:
    """Members' time vs fusion time, 3 members x 4 views on real images, one run."""
    import cv2

    from marauder.runtime.fusion import weighted_boxes_fusion
    from marauder.runtime.pipeline import Pipeline
    from marauder.runtime.tta import View

    folder = SHARED_DATA / "underwater-det" / "images"
    paths = sorted(folder.rglob("*.jpg"))[:n_images] if folder.is_dir() else []
    if not paths:
        print(f"skipped the real-image part: {folder} is not there")
        return [], {"skipped": f"{folder} not found"}
    images = [cv2.imread(str(p)) for p in paths]
    members, what = members_for_timing()
    views = [View(), View(hflip=True), View(vflip=True), View(rotation=180)]
    pipeline = Pipeline(members, views, {"method": "wbf", "iou_threshold": 0.55, "skip_box_threshold": 0.001})
    pipeline.predict_raw(images[:1])  # warm-up
    t0 = time.perf_counter()
    raw = pipeline.predict_raw(images)
    t1 = time.perf_counter()
    pipeline.fuse_raw(raw)
    t2 = time.perf_counter()
    peer_s, exact = 0.0, True
    for image, per_image in zip(images, raw):  # ensemble-boxes on the same normalised boxes
        h, w = image.shape[:2]
        sources = [d for per_model in per_image for d in per_model]
        scale = np.array([w, h, w, h], dtype=np.float64)
        arrays = ([np.clip(d.xyxy / scale, 0, 1) for d in sources], [d.scores.astype(np.float64) for d in sources],
                  [d.class_ids.astype(np.float64) for d in sources])
        t = time.perf_counter()
        theirs = peer(*arrays, iou_thr=0.55, skip_box_thr=0.001)
        peer_s += time.perf_counter() - t
        exact &= all(np.array_equal(a, b) for a, b in zip(weighted_boxes_fusion(*arrays, iou_thr=0.55,
                                                                                 skip_box_thr=0.001), theirs))
    n = len(images)
    model_ms, fusion_ms, peer_ms = 1000 * (t1 - t0) / n, 1000 * (t2 - t1) / n, 1000 * peer_s / n
    boxes = sum(len(d) for per_image in raw for per_model in per_image for d in per_model) / (n * 12)
    setup = f"{n} underwater-det images, {what}, 4 views, {IMGSZ} px, conf {RAW_CONFIDENCE}, ~{boxes:.0f} boxes/source"
    real_boxes = boxes >= 1
    if not real_boxes:  # untrained members find nothing: compare with the synthetic worst case instead
        fusion_ms, peer_ms = synthetic_ms["ours"], synthetic_ms["peer"]
        setup += "; fusion timed on the synthetic 12 x 300 boxes"
    print(f"real images: members {model_ms:.0f} ms, fusion {fusion_ms:.1f} ms ({fusion_ms / model_ms:.1%}), "
          f"ensemble-boxes {peer_ms:.1f} ms per image ({setup})")
    rows = [row("fusion time / members' time, 3 members x 4 views", round(fusion_ms / model_ms, 4),
                round(peer_ms / model_ms, 4), "ensemble-boxes on the same boxes", "", "<= 0.05", setup,
                higher_is_better=False)]
    if real_boxes:  # else the synthetic row above already says it
        rows.append(row("fusion per image, real boxes", round(fusion_ms, 2), round(peer_ms, 2), "ensemble-boxes",
                        "ms", "faster", f"members {model_ms:.0f} ms per image", higher_is_better=False))
    return rows, {"members_ms": model_ms, "fusion_ms": fusion_ms, "peer_ms": peer_ms, "boxes_per_source": boxes,
                  "members": what, "exact": bool(exact)}


if __name__ == "__main__":
    sys.exit(main())
