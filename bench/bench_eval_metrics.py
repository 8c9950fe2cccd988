"""COCO metric computation: our vectorised evaluator vs pycocotools COCOeval vs faster-coco-eval.

Same synthetic input for all three, one run each: 5,000 images x 20 labelled boxes x 10 classes;
per image 20 predictions (90% of the labels jittered, 15% of those with a wrong class, the rest
false alarms), uniform random scores. Timed: for the peers evaluate + accumulate + summarize on
their already-built COCO objects (index building and loadRes excluded); for ours the whole
`coco_metrics` call from our Detections/GroundTruth lists (flattening included). Also reported:
the largest difference of the 12 summary stats from pycocotools'.
Target (issue #5): no slower than faster-coco-eval, stats equal to pycocotools to 1e-4.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))
from common import Timer, row, write_result  # noqa: E402

N_IMAGES = int(os.environ.get("BENCH_EVAL_IMAGES", 5000))
N_BOXES, N_CLASSES = 20, 10
H, W = 720, 1280


def synthetic(seed: int = 0):
    from marauder.types import Detections, GroundTruth

    rng = np.random.default_rng(seed)
    preds, gts = [], []
    for _ in range(N_IMAGES):
        xy = rng.uniform(0, [W - 200, H - 200], (N_BOXES, 2))
        g = np.c_[xy, xy + rng.uniform(8, 200, (N_BOXES, 2))]  # small, medium and large objects
        gc = rng.integers(0, N_CLASSES, N_BOXES)
        found = rng.random(N_BOXES) < 0.9
        p = g[found] + rng.normal(0, 4, (found.sum(), 4))
        p[:, 2:] = np.maximum(p[:, 2:], p[:, :2] + 1)
        pc = np.where(rng.random(found.sum()) < 0.85, gc[found], rng.integers(0, N_CLASSES, found.sum()))
        n_fp = N_BOXES - int(found.sum())
        fxy = rng.uniform(0, [W - 200, H - 200], (n_fp, 2))
        p = np.r_[p, np.c_[fxy, fxy + rng.uniform(8, 200, (n_fp, 2))]]
        pc = np.r_[pc, rng.integers(0, N_CLASSES, n_fp)]
        preds.append(Detections(p, rng.random(N_BOXES), pc, (H, W)))
        gts.append(GroundTruth(g, gc, (H, W)))
    return preds, gts


def coco_dicts(preds, gts):
    images, anns, results = [], [], []
    for i, (p, g) in enumerate(zip(preds, gts), start=1):
        images.append({"id": i, "width": W, "height": H, "file_name": f"{i}.jpg"})
        for b, c in zip(g.xyxy.astype(float).tolist(), g.class_ids.tolist()):
            w, h = b[2] - b[0], b[3] - b[1]
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": c + 1, "bbox": [b[0], b[1], w, h],
                         "area": w * h, "iscrowd": 0})
        for b, c, s in zip(p.xyxy.astype(float).tolist(), p.class_ids.tolist(), p.scores.astype(float).tolist()):
            results.append({"image_id": i, "category_id": c + 1, "score": s,
                            "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]]})
    cats = [{"id": k + 1, "name": f"class{k}"} for k in range(N_CLASSES)]
    return {"images": images, "annotations": anns, "categories": cats}, results


def run_pycocotools(gt_dict, results):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = gt_dict
        gt.createIndex()
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, "bbox")
        with Timer() as t:
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
    return np.asarray(ev.stats), t.seconds


def run_faster(gt_dict, results):
    from faster_coco_eval import COCO, COCOeval_faster

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(gt_dict)
        dt = gt.loadRes(results)
        ev = COCOeval_faster(gt, dt, "bbox")
        with Timer() as t:
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
    return np.asarray(ev.stats[:12]), t.seconds


def main() -> None:
    from marauder.evaluate import coco_metrics

    preds, gts = synthetic()
    gt_dict, results = coco_dicts(preds, gts)
    with Timer() as t_ours:
        ours = np.asarray(coco_metrics(preds, gts, N_CLASSES)["stats"])
    ref, t_pycoco = run_pycocotools(gt_dict, results)
    fast, t_fast = run_faster(gt_dict, results)
    diff_ours = float(np.abs(ours - ref).max())
    diff_fast = float(np.abs(fast - ref).max())
    size = f"{N_IMAGES} images x {N_BOXES} boxes x {N_CLASSES} classes"
    print(f"ours {t_ours.seconds:.3f}s  pycocotools {t_pycoco:.3f}s  faster-coco-eval {t_fast:.3f}s")
    print(f"max |stat - pycocotools|: ours {diff_ours:.2e}, faster-coco-eval {diff_fast:.2e}")
    print("stats (pycocotools):", np.round(ref, 5).tolist())
    rows = [
        row("seconds vs faster-coco-eval", round(t_ours.seconds, 3), round(t_fast, 3), "faster-coco-eval", "s",
            target="<= 1.0 ratio", notes=size, higher_is_better=False),
        row("seconds vs pycocotools", round(t_ours.seconds, 3), round(t_pycoco, 3), "pycocotools COCOeval", "s",
            notes=size, higher_is_better=False),
        row("max |stat diff| vs pycocotools", diff_ours, diff_fast, "faster-coco-eval", "",
            target="<= 1e-4", notes="12 COCO summary stats", higher_is_better=False),
    ]
    write_result("eval_metrics", "COCO bbox metrics, same synthetic input: ours vs pycocotools vs faster-coco-eval",
                 rows, {"stats_pycocotools": ref.tolist(), "stats_ours": ours.tolist(),
                        "stats_faster_coco_eval": fast.tolist()})


if __name__ == "__main__":
    main()
