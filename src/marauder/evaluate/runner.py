"""`evaluate_model`: run any predictor over a dataset split once and compute every metric.

Each image is decoded once (the next batch is read on a background thread while the model works on
the current one); the model sees batches of `batch` images. Detections and labels are kept (small),
pixels are not, except for the thumbnails of the critical-species errors shown in the report.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..errors import DataError, MarauderError
from ..log import get_logger, progress
from ..types import Detections, GroundTruth
from .bootstrap import bootstrap_ratio_ci
from .calibration import reliability
from .classmap import class_index_map, remap
from .coco import coco_metrics
from .confusion import confusion_matrix
from .examples import WorstCases
from .operating import operating_point, resolve_thresholds
from .report import EvaluationReport

log = get_logger("evaluate")


def check_engine_support(path: Path) -> None:
    if path.suffix.lower() == ".engine" and importlib.util.find_spec("tensorrt") is None:
        raise MarauderError("a TensorRT engine needs TensorRT, which is not installed on this machine; "
                            "evaluate the .onnx export instead (same detections up to FP16 rounding)",
                            file=str(path))


def load_model(model, *, imgsz: int | None, conf: float, iou: float, batch: int, device: str | None = None):
    """A Predictor from a path (.pt/.onnx/.engine/pipeline yaml) or the predictor itself."""
    if not isinstance(model, str | Path):
        return model, getattr(model, "name", type(model).__name__)
    from ..infer.pipeline_predictor import load_member

    path = Path(model)
    check_engine_support(path)
    options = {"conf": conf, "iou": iou, "batch": batch}
    if imgsz is not None:
        options["imgsz"] = imgsz
    if device is not None:
        options["device"] = device
    return load_member(path, **options), str(path)


def _read_image(path: Path) -> np.ndarray:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError("cannot decode image", file=str(path))
    return image


def _batches(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _read_batch(pairs: Sequence[tuple[Path, Path]], num_classes: int):
    from ..data.dataset import read_ground_truth

    images = [_read_image(p) for p, _ in pairs]
    gts = [read_ground_truth(p, lbl, num_classes=num_classes, size=img.shape[:2])
           for (p, lbl), img in zip(pairs, images)]
    return images, gts


def _prefetched(chunks: list, num_classes: int) -> Iterator[tuple[Sequence, list, list]]:
    """Yield (pairs, images, ground truths) per chunk, reading chunk i+1 while i is being predicted."""
    if not chunks:
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(_read_batch, chunks[0], num_classes)
        for i, chunk in enumerate(chunks):
            images, gts = pending.result()
            if i + 1 < len(chunks):
                pending = pool.submit(_read_batch, chunks[i + 1], num_classes)
            yield chunk, images, gts


def evaluate_model(model, dataset_yaml, *, split: str = "test", imgsz: int | None = None, conf: float = 0.001,
                   iou: float = 0.6, batch: int = 16, critical_species: Sequence[str] = (),
                   operating_conf: float = 0.25, bootstrap: int = 1000, class_map: dict | None = None,
                   output_dir: str | Path | None = None, ece_bins: int = 10, worst_examples: int = 8,
                   seed: int = 0, device: str | None = None) -> EvaluationReport:
    """Evaluate `model` (path or Predictor) on one split of `dataset_yaml`.

    Args:
        model: .pt / .onnx / .engine / pipeline yaml path, or an object with `class_names` and
            `predict(list of BGR images) -> list[Detections]`.
        dataset_yaml: Ultralytics-style dataset.yaml.
        split: "test", "val" or "train".
        imgsz, conf, iou, batch: inference settings passed to the predictor (imgsz None: model default).
        critical_species: class names whose recall gets a bootstrap confidence interval and whose
            worst errors are drawn in the report; names absent from the dataset are skipped with a warning.
        operating_conf: score threshold for P/R/F1, the confusion matrix and critical recall, unless
            the predictor carries per-class `thresholds` (a calibrated pipeline does).
        bootstrap: resamples (over images) for the recall confidence intervals; 0 disables.
        class_map: {model class: dataset class or None} when the names differ.
        output_dir: when given, the report is written there.
        device: inference device for model paths ("cpu", "0", ...; None: the predictor's default).

    Raises:
        MarauderError / DataError: missing or empty split, bad labels, class names that differ
            (without `class_map`), a TensorRT engine without TensorRT, class ids outside the dataset.
    """
    from ..data.dataset import iter_split, load_dataset_yaml

    spec = load_dataset_yaml(dataset_yaml)
    pairs = list(iter_split(spec, split))
    if not pairs:
        raise DataError(f"the '{split}' split has no images", file=str(spec.yaml_path))
    names, nc = list(spec.names), spec.nc
    predictor, model_label = load_model(model, imgsz=imgsz, conf=conf, iou=iou, batch=batch,
                                         device=device)
    index_map = class_index_map(list(predictor.class_names), names, class_map)
    thresholds = resolve_thresholds(nc, operating_conf, _predictor_thresholds(predictor, class_map), names)
    critical = []
    for species in critical_species:
        if species in names:
            critical.append(names.index(species))
        else:
            log.warning("critical species '%s' is not a class of %s; skipped", species, spec.yaml_path)
    worst = WorstCases(critical, names, thresholds, limit=worst_examples)

    chunks = list(_batches(pairs, max(1, batch)))
    predictions, ground_truths, batch_seconds = _predict_split(predictor, chunks, nc, index_map, worst,
                                                               f"model {model_label}", split)
    n = len(predictions)
    coco = coco_metrics(predictions, ground_truths, nc, return_matches=True)
    op = operating_point(coco["matches"], [g.counted for g in ground_truths], nc, thresholds)
    matches = coco["matches"]
    curve = reliability(matches["det_score"], matches["matched"][0, 0], bins=ece_bins)
    cm = confusion_matrix(predictions, ground_truths, nc, thresholds)
    del coco["matches"]  # large per-detection arrays; the report keeps only the summaries

    critical_recall = {}
    for k in critical:
        point, low, high = bootstrap_ratio_ci(op.tp_per_image[:, k], op.gt_per_image[:, k], bootstrap,
                                              seed=seed + k)
        critical_recall[names[k]] = {"recall": _value(point), "ci_low": _value(low), "ci_high": _value(high),
                                     "support": int(op.support[k]), "threshold": float(thresholds[k])}

    total_s = float(sum(batch_seconds))
    # the first batch carries one-off warm-up (graph build, allocations); leave it out of latency
    steady = batch_seconds[1:] if len(batch_seconds) > 1 else batch_seconds
    steady_images = n - len(chunks[0]) if len(batch_seconds) > 1 else n
    latency_ms = 1000.0 * sum(steady) / max(1, steady_images)
    summary = {
        "mAP50-95": _value(coco["mAP50-95"]), "mAP50": _value(coco["mAP50"]), "mAP75": _value(coco["mAP75"]),
        "AP_small": _value(coco["AP_small"]), "AP_medium": _value(coco["AP_medium"]),
        "AP_large": _value(coco["AP_large"]), "AR100": _value(coco["AR100"]),
        "per_class": _per_class(coco, op, names), "critical_recall": critical_recall,
        "ece": _value(curve["ece"]), "latency_ms": latency_ms,
        "throughput_ips": n / total_s if total_s > 0 else None, "num_images": n,
    }
    details = {
        "class_names": names, "coco_stats": coco["stats"], "confusion_matrix": cm.tolist(),
        "reliability": curve, "operating_thresholds": thresholds.tolist(),
        "pr_curve_iou50": {names[k]: coco["precision"][0, :, k, 0, -1].tolist() for k in range(nc)},
        "recall_thresholds": coco["recall_thresholds"].tolist(),
        "worst_false_negatives": [e.to_record() for e in worst.false_negatives],
        "worst_false_positives": [e.to_record() for e in worst.false_positives],
        "timing": _timing(batch_seconds, [len(c) for c in chunks], batch),
    }
    used_imgsz = imgsz if imgsz is not None else getattr(predictor, "imgsz", None)
    meta = {"model": model_label, "dataset": str(spec.yaml_path), "split": split, "imgsz": used_imgsz, "conf": conf,
            "iou": iou, "batch": batch, "operating_conf": operating_conf, "bootstrap": bootstrap,
            "critical_species": [names[k] for k in critical], "model_class_names": list(predictor.class_names),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    report = EvaluationReport(summary, details, meta,
                              make_figures=lambda: _figures(coco, cm, curve, worst, names))
    log.info("%s on %s/%s: mAP50-95 %.4f mAP50 %.4f (%d images, %.1f ms/image)", model_label, spec.yaml_path.name,
             split, coco["mAP50-95"], coco["mAP50"], n, latency_ms)
    if output_dir is not None:
        report.write(output_dir)
    return report


def _predict_split(predictor, chunks: list, num_classes: int, index_map: np.ndarray, worst: WorstCases,
                   source: str, split: str) -> tuple[list[Detections], list[GroundTruth], list[float]]:
    """Predict every chunk (timed), map classes to the dataset's, collect the worst errors' crops."""
    predictions: list[Detections] = []
    ground_truths: list[GroundTruth] = []
    batch_seconds: list[float] = []
    for chunk, images, gts in progress(_prefetched(chunks, num_classes), f"evaluate {split}", total=len(chunks)):
        start = time.perf_counter()
        dets = predictor.predict(images)
        batch_seconds.append(time.perf_counter() - start)
        if len(dets) != len(images):
            raise MarauderError(f"{source} returned {len(dets)} results for {len(images)} images")
        for (path, _), image, det, gt in zip(chunk, images, dets, gts):
            det = remap(det, index_map, source)
            det = Detections(det.xyxy, det.scores, det.class_ids, image.shape[:2])
            worst.add(path.name, image, det, gt)
            predictions.append(det)
            ground_truths.append(gt)
    return predictions, ground_truths, batch_seconds


def _value(x) -> float | None:
    """A metric for the report: None where pycocotools says -1 (undefined) or the value is nan."""
    return None if x is None or x == -1 or not np.isfinite(x) else float(x)


def _per_class(coco: dict, op, names: list[str]) -> dict:
    precision, recall, f1 = op.precision, op.recall, op.f1
    return {
        name: {"AP50-95": _value(coco["ap_per_class"][k]), "AP50": _value(coco["ap50_per_class"][k]),
               "precision": _value(precision[k]), "recall": _value(recall[k]), "f1": _value(f1[k]),
               "support": int(op.support[k]), "threshold": float(op.thresholds[k]),
               "tp": int(op.tp[k]), "fp": int(op.fp[k]), "fn": int(op.fn[k])}
        for k, name in enumerate(names)
    }


def _timing(batch_seconds: list[float], batch_sizes: list[int], batch: int) -> dict:
    """Model time: total, and per image within each batch (median / 95th percentile / max)."""
    per_image_ms = 1000.0 * np.asarray(batch_seconds) / np.maximum(np.asarray(batch_sizes[:len(batch_seconds)]), 1)
    pct = (lambda q: float(np.percentile(per_image_ms, q))) if per_image_ms.size else (lambda q: None)
    return {"predict_seconds": float(sum(batch_seconds)), "batches": len(batch_seconds), "batch": batch,
            "ms_per_image_p50": pct(50), "ms_per_image_p95": pct(95), "ms_per_image_max": pct(100),
            "first_batch_ms_per_image": float(per_image_ms[0]) if per_image_ms.size else None}


def _predictor_thresholds(predictor, class_map: dict | None) -> dict[str, float] | None:
    """A predictor's own per-class thresholds (array by its class id, or {name: value}) keyed by
    dataset class name, or None when it has none."""
    own = getattr(predictor, "thresholds", None)
    if own is None:
        return None
    if not isinstance(own, dict):
        values = np.asarray(own, dtype=np.float64).reshape(-1)
        own = {name: float(v) for name, v in zip(predictor.class_names, values)}
    if class_map:
        own = {(class_map[k] if k in class_map else k): v for k, v in own.items()}
    return {k: float(v) for k, v in own.items() if k is not None}


def _figures(coco: dict, cm: np.ndarray, curve: dict, worst: WorstCases, names: list[str]) -> dict[str, bytes]:
    from . import plots

    figures = {
        "pr_curves": plots.pr_curves(coco["precision"], coco["recall_thresholds"], names,
                                     coco["ap50_per_class"]),
        "confusion_matrix": plots.confusion_plot(cm, names),
        "reliability": plots.reliability_plot(curve),
    }
    if worst.critical.size and worst.limit > 0:
        figures["worst_false_negatives"] = plots.examples_grid(worst.false_negatives,
                                                               "Missed critical species (green: label)")
        figures["worst_false_positives"] = plots.examples_grid(worst.false_positives,
                                                               "False alarms on critical species (red: detection)")
    return figures
