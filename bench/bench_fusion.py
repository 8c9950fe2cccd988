"""Weighted boxes fusion: our numpy WBF (marauder.runtime.fusion, used by the training side and the edge
runtime alike) against ensemble-boxes, the library it reproduces, in the same run.

Input shaped like one image of an ensemble with TTA at mAP settings: 3 members x 4 views = 12 sources of
300 boxes each (conf 0.001, Ultralytics' max_det), 5 classes, boxes jittered around 40 objects so clusters
form as they do on real detections. Every run checks that both give bit-identical output.

  python bench/bench_fusion.py [--images N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import row, write_result  # noqa: E402


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
    write_result("fusion", "Weighted boxes fusion: ours vs ensemble-boxes", rows, {"ms": ms, "exact": exact})
    print(f"ours {ms['ours']:.1f} ms, ensemble-boxes {ms['peer']:.1f} ms per image, identical: {exact}")
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
