"""The calibrate stage's report: report.json, report.md and the reliability diagram, from one typed record."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..evaluate.calibration import ECE_BINS, binning, expected_calibration_error, reliability
from ..types import Detections, GroundTruth
from .data import LabelledImages
from .fit import CalibrationFit, ScoredDetections
from .thresholds import HeldOutPoint, ThresholdChoice


@dataclass
class CalibrationRun:
    """Everything one calibrate run measured and chose: what the report is made of."""

    class_names: list[str]
    models: list[Path]
    views: list  # marauder.runtime.tta.View
    data: LabelledImages
    gts: list[GroundTruth]
    single: list[Detections]  # the first model, identity view
    no_tta: list[Detections]  # all models fused, identity view
    with_tta: list[Detections]  # all models x views fused (what is calibrated)
    scored: ScoredDetections
    fit: CalibrationFit
    choices: dict[int, ThresholdChoice]  # class id -> threshold, judged on the data that chose it
    heldout: dict[int, HeldOutPoint]  # class id -> precision and recall judged out of fold
    folds: int
    critical: set[str] = field(default_factory=set)
    absent: list[str] = field(default_factory=list)  # classes without ground truth in the data


def summary_line(report: dict) -> str:
    m, e = report["map"], report["ece"]
    return (
        f"mAP50-95 {_fmt(m['ensemble']['mAP50-95'])} without TTA, {_fmt(m['ensemble_tta']['mAP50-95'])} with "
        f"TTA; ECE {_fmt(e['before'])} -> {_fmt(e['after'])} (held out)"
    )



def _map_summary(preds, gts, nc: int) -> dict:
    from ..evaluate.coco import coco_metrics

    m = coco_metrics(preds, gts, nc)
    return {
        "mAP50-95": round(m["mAP50-95"], 4),
        "mAP50": round(m["mAP50"], 4),
        "ap_per_class": [None if not math.isfinite(v) else round(v, 4) for v in m["ap_per_class"]],
    }


def _num(v) -> float | None:
    return None if v is None or not math.isfinite(float(v)) else round(float(v), 4)


def build_report(run: CalibrationRun) -> dict:
    """report.json: what was fitted, on what, and how well (held-out where it matters)."""
    class_names, scored, fit, choices, heldout = run.class_names, run.scored, run.fit, run.choices, run.heldout
    absent, critical, gts = run.absent, run.critical, run.gts
    nc = len(class_names)
    oof = fit.out_of_fold
    rows_cal, rows_thr = [], []
    for k, name in enumerate(class_names):
        m = scored.class_ids == k
        ch = fit.choices[k]
        rows_cal.append(
            {
                "class": name,
                "detections": int(m.sum()),
                "true_positives": int(scored.labels[m].sum()),
                "gt_boxes": int(scored.gt_counts[:, k].sum()),
                "method": "pooled:" + fit.pooled["method"] if ch.fallback else ch.method,
                "fallback": ch.fallback,
                "absent": name in absent,
                "heldout_log_loss": {k2: _num(v) for k2, v in ch.heldout_log_loss.items()},
                "ece_before": _num(expected_calibration_error(scored.scores[m], scored.labels[m]))
                if m.any()
                else None,
                "ece_after": _num(expected_calibration_error(oof[m], scored.labels[m])) if m.any() else None,
            }
        )
        rows_thr.append({"class": name, "critical": name in critical, **choices[k].as_dict(),
                         "heldout": heldout[k].as_dict()})
    pooled = fit.pooled_choice
    return {
        "models": [str(m) for m in run.models],
        "views": [v.name for v in run.views],
        "calibration_data": str(run.data.source),
        "images": len(gts),
        "gt_boxes": int(scored.gt_counts.sum()),
        "detections": int(len(scored.scores)),
        "class_names": class_names,
        "map": {
            "single_model": _map_summary(run.single, gts, nc),
            "ensemble": _map_summary(run.no_tta, gts, nc),
            "ensemble_tta": _map_summary(run.with_tta, gts, nc),
        },
        "ece": {
            "before": _num(expected_calibration_error(scored.scores, scored.labels)),
            "after": _num(expected_calibration_error(oof, scored.labels)),
            "note": f"held-out: {run.folds}-fold cross-validation over images; {binning()}",
        },
        "pooled_calibrator": {
            "method": fit.pooled["method"],
            "heldout_log_loss": {k: _num(v) for k, v in pooled.heldout_log_loss.items()},
        },
        "calibration": rows_cal,
        "thresholds": rows_thr,
        "absent_classes": absent,
    }


def _fmt(v) -> str:
    return "-" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v))


def report_markdown(r: dict) -> str:
    mp = r["map"]
    lines = [
        "# TTA and calibration report",
        "",
        f"Calibration data: `{r['calibration_data']}` ({r['images']} images, {r['gt_boxes']} boxes, "
        f"{r['detections']} fused detections). Views: {', '.join(r['views'])}.",
        "",
        "| predictions | mAP50-95 | mAP50 |",
        "|---|---|---|",
        f"| first model, no TTA | {_fmt(mp['single_model']['mAP50-95'])} "
        f"| {_fmt(mp['single_model']['mAP50'])} |",
        f"| ensemble, no TTA | {_fmt(mp['ensemble']['mAP50-95'])} | {_fmt(mp['ensemble']['mAP50'])} |",
        f"| ensemble + TTA | {_fmt(mp['ensemble_tta']['mAP50-95'])} | {_fmt(mp['ensemble_tta']['mAP50'])} |",
        "",
        f"Expected calibration error ({r['ece']['note']}): before {_fmt(r['ece']['before'])}, "
        f"after {_fmt(r['ece']['after'])}. Pooled calibrator: {r['pooled_calibrator']['method']}.",
        "",
        "| class | detections | TP | GT | calibrator | ECE before | ECE after | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in r["calibration"]:
        note = "absent from calibration data" if c["absent"] else (c["fallback"] or "")
        lines.append(
            f"| {c['class']} | {c['detections']} | {c['true_positives']} | {c['gt_boxes']} | {c['method']} "
            f"| {_fmt(c['ece_before'])} | {_fmt(c['ece_after'])} | {note} |"
        )
    lines += [
        "",
        "Precision and recall on the images that chose the thresholds are optimistic; the held-out "
        "columns judge each image at thresholds chosen without it (k-fold cross-fitting over images, "
        "on held-out calibrated scores): expect those on new data.",
        "",
        "| class | objective | threshold | precision (95% CI) | recall (95% CI) "
        "| held-out precision (95% CI) | held-out recall (95% CI) | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in r["thresholds"]:
        ci = lambda v, lo_hi: f"{_fmt(v)} [{_fmt(lo_hi[0])}, {_fmt(lo_hi[1])}]"  # noqa: E731
        obj = t["objective"] + (" (critical)" if t["critical"] else "")
        h = t["heldout"]
        lines.append(
            f"| {t['class']} | {obj} | {_fmt(t['threshold'])} | {ci(t['precision'], t['precision_ci'])} "
            f"| {ci(t['recall'], t['recall_ci'])} | {ci(h['precision'], h['precision_ci'])} "
            f"| {ci(h['recall'], h['recall_ci'])} | {t['note']} |"
        )
    return "\n".join(lines) + "\n"


def reliability_diagram(scored: ScoredDetections, calibrated_oof: np.ndarray) -> bytes:
    """The evaluation report's reliability plot, raw fused scores beside the held-out calibrated ones."""
    from ..evaluate.plots import reliability_plot

    return reliability_plot(reliability(scored.scores, scored.labels, ECE_BINS),
                            reliability(calibrated_oof, scored.labels, ECE_BINS),
                            titles=("raw fused score", "calibrated (held out)"))
