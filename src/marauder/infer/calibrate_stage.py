"""The `calibrate` stage: models + TTA + fusion on labelled data -> calibrators, thresholds, report.

Writes into checkpoints/tta_calibration/ (all or nothing):
  pipeline_config.yaml     what `PipelinePredictor` / `marauder evaluate --model` read
  calibrator.pth           the same calibrators and thresholds as plain tensors
  report.json, report.md   mAP with/without TTA, ECE before/after (held-out folds), thresholds table
  reliability_diagram.png  calibration before/after, held-out
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from ..errors import DataError, MarauderError
from ..evaluate.calibration import ECE_BINS, binning, expected_calibration_error, reliability
from ..log import get_logger, progress
from ..runtime.spec import POOLED
from ..runtime.tta import views_from_config
from ..types import GroundTruth
from .calibration import ScoredDetections, fit_per_class, save_calibrator_file
from .pipeline_predictor import build_pipeline, load_member
from .pipeline_spec import ModelEntry, PipelineSpec, load_pipeline_spec
from .thresholds import choose_class_thresholds, heldout_operating_point

log = get_logger("calibrate")


# -- calibration data --------------------------------------------------------------------------------
@dataclass
class LabelledImages:
    images: list[Path]
    labels: list[Path]
    class_names: list[str] | None  # from a dataset.yaml when one is found
    source: Path


def _find_dataset_yaml(folder: Path) -> Path | None:
    for parent in [folder, *folder.parents][:4]:
        if (parent / "dataset.yaml").is_file():
            return parent / "dataset.yaml"
    return None


def resolve_calibration_data(path: str | Path, split: str = "val") -> LabelledImages:
    """A dataset.yaml (its `split`), a split folder of data/organized (`organized/val` or
    `organized/images/val`), or a folder with images/ and labels/; labels beside the images."""
    from ..data.dataset import label_path_for_image, load_dataset_yaml, split_images
    from ..fsio import list_images

    path = Path(path)
    names = None
    if path.suffix.lower() in (".yaml", ".yml"):
        spec = load_dataset_yaml(path)
        images, names = split_images(spec, split), spec.names
    else:
        folder = path
        if not folder.is_dir() and (folder.parent / "images" / folder.name).is_dir():
            folder = folder.parent / "images" / folder.name  # data/organized/val -> data/organized/images/val
        elif folder.is_dir() and (folder / "images").is_dir():
            folder = folder / "images"
        if not folder.is_dir():
            raise DataError(
                "calibration data not found (expected a dataset.yaml or a folder of images)", file=str(path)
            )
        images = list_images(folder, recursive=True)
        yml = _find_dataset_yaml(folder)
        if yml is not None:
            names = load_dataset_yaml(yml).names
    if not images:
        raise DataError("no images in the calibration data", file=str(path))
    labels = []
    for image in images:
        candidate = label_path_for_image(image)
        beside = image.with_suffix(".txt")
        labels.append(candidate if candidate.is_file() or not beside.is_file() else beside)
    if not any(p.is_file() for p in labels):
        raise DataError(
            f"calibration data has no labels: none of the {len(images)} images has a label file "
            f"(looked for e.g. {labels[0]}); calibration needs labelled images",
            file=str(path),
        )
    return LabelledImages(images, labels, names, path)


def _trained_imgsz(member, default: int = 640) -> int:
    """The image size a .pt model was trained at (so calibration sees what training saw)."""
    ckpt = getattr(getattr(member, "model", None), "ckpt", None)
    args = ckpt.get("train_args", {}) if isinstance(ckpt, dict) else {}
    size = args.get("imgsz") if isinstance(args, dict) else None
    return int(size) if isinstance(size, int) else int(getattr(member, "imgsz", default) or default)


# -- the stage ----------------------------------------------------------------------------------------
@dataclass
class CalibrateResult:
    output_dir: Path
    pipeline_config: Path
    calibrator: Path
    report: dict


def run_calibrate(
    cfg,
    critical_species: list[str],
    models: list[str | Path],
    calibration_data: str | Path,
    output_dir: str | Path,
    *,
    split: str = "val",
    device: str | None = None,
    batch: int = 8,
    seed: int = 0,
) -> CalibrateResult:
    """Fit TTA + fusion + calibration + thresholds for `models` on labelled `calibration_data`.

    Args:
        cfg: the `tta_calibration` section (TTACalibrationConfig).
        critical_species: class names that get the recall objective.
    Raises:
        MarauderError/DataError: missing models, different class lists, unlabelled data, no GT at all.
    """
    from ..data.dataset import read_ground_truth

    models = [Path(m) for m in models]
    if not models:
        raise MarauderError("no models given (--models)")
    for m in models:
        if not m.exists():
            raise MarauderError("model file not found", file=str(m))
    if cfg.fusion.weights is not None and len(cfg.fusion.weights) != len(models):
        raise MarauderError(
            f"tta_calibration.fusion.weights has {len(cfg.fusion.weights)} entries for {len(models)} models"
        )
    data = resolve_calibration_data(calibration_data, split)

    members = [
        load_member(m, imgsz=cfg.imgsz or 640, conf=cfg.raw_confidence, device=device, batch=batch)
        for m in models
    ]
    imgsz = int(cfg.imgsz or _trained_imgsz(members[0]))
    for path, member in zip(models, members):
        if path.suffix.lower() == ".pt" and hasattr(member, "imgsz"):  # exported models keep their own size
            member.imgsz = imgsz
    names = _model_names(models)
    views = views_from_config(cfg.tta)
    ensemble = build_pipeline(members, views, cfg.fusion, names)
    class_names = ensemble.class_names
    if data.class_names is not None and list(data.class_names) != class_names:
        raise DataError(
            f"the calibration data's classes {data.class_names} differ from the models' {class_names}",
            file=str(data.source),
        )
    nc = len(class_names)
    unknown_critical = sorted(set(critical_species) - set(class_names))
    if unknown_critical:
        log.warning(
            "critical species %s are not classes of the models (%s); ignored", unknown_critical, class_names
        )

    import cv2

    gts: list[GroundTruth] = []
    raw: list = []
    chunk = max(1, batch)
    for start in progress(
        range(0, len(data.images), chunk), "calibrate: predict", total=math.ceil(len(data.images) / chunk)
    ):
        paths = data.images[start : start + chunk]
        images = []
        for p in paths:
            img = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if img is None:
                raise DataError("cannot read image", file=str(p))
            images.append(img)
        for p, lbl, img in zip(paths, data.labels[start : start + chunk], images):
            gts.append(read_ground_truth(p, lbl, num_classes=nc, size=img.shape[:2]))
        raw.extend(ensemble.predict_raw(images))
    if sum(len(g) for g in gts) == 0:
        raise DataError(
            f"the calibration data's {len(gts)} label files hold no boxes; calibration needs "
            "labelled objects",
            file=str(data.source),
        )

    identity = [v for v, view in enumerate(views) if view.is_identity]
    no_tta = ensemble.fuse_raw(raw, views=identity)
    with_tta = ensemble.fuse_raw(raw) if len(views) > 1 else no_tta
    single = [per_image[0][identity[0]] for per_image in raw]
    fused = with_tta

    c = cfg.calibration
    scored = ScoredDetections.build(fused, gts, nc, c.iou_threshold)
    if len(scored.scores) == 0:
        log.warning(
            "the models made no detection at or above raw_confidence=%g on %d calibration images: "
            "nothing to calibrate, identity calibrators written",
            cfg.raw_confidence,
            len(gts),
        )
    fit = fit_per_class(scored, nc, c.methods, c.folds, c.min_samples_per_class)
    calibrated = fit.apply(scored.scores, scored.class_ids)
    t = cfg.thresholds
    choices = choose_class_thresholds(
        calibrated,
        scored.class_ids,
        scored.labels,
        scored.image_ids,
        scored.gt_counts,
        class_names,
        objective=t.objective,
        beta=t.beta,
        critical=set(critical_species),
        critical_recall=t.critical_recall,
        bootstrap=t.bootstrap,
        seed=seed,
    )
    # the thresholds above are reported on the data that chose them; these are judged on other images
    heldout = heldout_operating_point(
        fit.out_of_fold, scored.class_ids, scored.labels, scored.image_ids, scored.gt_counts, class_names,
        folds=c.folds, bootstrap=t.bootstrap, seed=seed, objective=t.objective, beta=t.beta,
        critical=set(critical_species), critical_recall=t.critical_recall,
    )
    for k, name in enumerate(class_names):
        if name in critical_species and t.critical_recall is not None and heldout[k].recall < t.critical_recall:
            log.warning("critical species '%s': recall %.3f on held-out images (95%% CI %.3f-%.3f) is below the "
                        "target %g that the threshold reaches on the images that chose it", name,
                        heldout[k].recall, *heldout[k].recall_ci, t.critical_recall)

    gt_per_class = scored.gt_counts.sum(axis=0)
    absent = [class_names[k] for k in range(nc) if gt_per_class[k] == 0]
    for name in absent:
        log.warning(
            "class '%s' has no ground-truth boxes in %s: it gets the pooled calibrator and the pooled "
            "threshold, and its numbers in the report are not measured",
            name,
            data.source,
        )
    report = _build_report(
        class_names,
        models,
        views,
        data,
        no_tta,
        with_tta,
        single,
        gts,
        scored,
        fit,
        choices,
        heldout,
        absent,
        set(critical_species),
        cfg,
    )

    calibration = {class_names[k]: _rounded(p) for k, p in fit.per_class.items()}
    calibration[POOLED] = _rounded(fit.pooled)
    thresholds = {
        class_names[k]: _floor6(ch.threshold) for k, ch in choices.items() if math.isfinite(ch.threshold)
    }
    output_dir = Path(output_dir)
    spec = PipelineSpec(
        class_names=class_names,
        imgsz=imgsz,
        models=[
            ModelEntry(
                name=n,
                path=os.path.relpath(m.resolve(), output_dir.resolve()),
                confidence_threshold=cfg.raw_confidence,
            )
            for n, m in zip(names, models)
        ],
        tta=cfg.tta,
        fusion=cfg.fusion,
        raw_confidence=cfg.raw_confidence,
        calibrator="calibrator.pth",
        calibration=calibration,
        thresholds=thresholds,
        critical_species=[s for s in critical_species if s in class_names],
    )
    from ..fsio import atomic_directory, atomic_write_json, atomic_write_text

    with atomic_directory(output_dir, replace=True) as tmp:
        atomic_write_text(tmp / "pipeline_config.yaml", _spec_yaml(spec))
        load_pipeline_spec(tmp / "pipeline_config.yaml")  # what we write must read back
        save_calibrator_file(tmp / "calibrator.pth", class_names, calibration, thresholds)
        atomic_write_json(tmp / "report.json", report)
        atomic_write_text(tmp / "report.md", _report_markdown(report))
        _reliability_diagram(tmp / "reliability_diagram.png", scored, fit.out_of_fold)
    log.info("calibrate: %s; wrote %s", summary_line(report), output_dir)
    return CalibrateResult(
        output_dir, output_dir / "pipeline_config.yaml", output_dir / "calibrator.pth", report
    )


def summary_line(report: dict) -> str:
    m, e = report["map"], report["ece"]
    return (
        f"mAP50-95 {_fmt(m['ensemble']['mAP50-95'])} without TTA, {_fmt(m['ensemble_tta']['mAP50-95'])} with "
        f"TTA; ECE {_fmt(e['before'])} -> {_fmt(e['after'])} (held out)"
    )


def _model_names(models: list[Path]) -> list[str]:
    """Readable, unique names: the run folder (ensemble/<variant>/best.pt -> variant), else the stem."""
    names = []
    for m in models:
        folder = (
            m.parent.parent if m.parent.name == "weights" else m.parent
        )  # Ultralytics' run/weights/best.pt
        base = folder.name if m.stem in ("best", "last") and folder.name else m.stem
        name, k = base, 2
        while name in names:
            name, k = f"{base}_{k}", k + 1
        names.append(name)
    return names


def _floor6(v: float) -> float:
    return math.floor(float(v) * 1e6) / 1e6  # round down: the written threshold keeps what was chosen


def _rounded(params: dict) -> dict:
    out = {}
    for k, v in params.items():
        if isinstance(v, list):
            out[k] = [round(float(x), 6) for x in v]
        elif isinstance(v, float):
            out[k] = round(v, 6)
        else:
            out[k] = v
    if out.get("method") == "isotonic":  # rounding must not break strictly increasing knots
        xs, ys = [], []
        for x, y in zip(out["x"], out["y"]):
            if xs and x <= xs[-1]:
                ys[-1] = max(ys[-1], y)
                continue
            xs.append(x)
            ys.append(y)
        out["x"], out["y"] = xs, ys
    return out


class _FlowListDumper(yaml.SafeDumper):
    pass


def _flow_lists(dumper, data):
    flow = all(isinstance(x, int | float) for x in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_FlowListDumper.add_representer(list, _flow_lists)


def _spec_yaml(spec: PipelineSpec) -> str:
    header = (
        "# Written by `marauder calibrate`. Models -> TTA views -> fusion -> per-class calibration\n"
        "# -> per-class thresholds. Paths are relative to this file. Unknown keys are errors.\n"
        "# calibration: class -> {method: identity|temperature|platt|isotonic, ...}; classes not\n"
        "# listed use '__pooled__'. thresholds: class -> operating threshold on the calibrated score.\n"
    )
    body = yaml.dump(spec.model_dump(mode="json"), Dumper=_FlowListDumper, sort_keys=False, width=110)
    return header + body


# -- report -------------------------------------------------------------------------------------------
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


def _build_report(
    class_names,
    models,
    views,
    data,
    no_tta,
    with_tta,
    single,
    gts,
    scored,
    fit,
    choices,
    heldout,
    absent,
    critical,
    cfg,
) -> dict:
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
        "models": [str(m) for m in models],
        "views": [v.name for v in views],
        "calibration_data": str(data.source),
        "images": len(gts),
        "gt_boxes": int(scored.gt_counts.sum()),
        "detections": int(len(scored.scores)),
        "class_names": class_names,
        "map": {
            "single_model": _map_summary(single, gts, nc),
            "ensemble": _map_summary(no_tta, gts, nc),
            "ensemble_tta": _map_summary(with_tta, gts, nc),
        },
        "ece": {
            "before": _num(expected_calibration_error(scored.scores, scored.labels)),
            "after": _num(expected_calibration_error(oof, scored.labels)),
            "note": f"held-out: {cfg.calibration.folds}-fold cross-validation over images; {binning()}",
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


def _report_markdown(r: dict) -> str:
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


def _reliability_diagram(path: Path, scored: ScoredDetections, calibrated_oof: np.ndarray) -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..fsio import atomic_write_bytes

    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), sharey=True)
    for ax, scores, title in (
        (axes[0], scored.scores, "raw fused score"),
        (axes[1], calibrated_oof, "calibrated (held out)"),
    ):
        curve = reliability(scores, scored.labels, ECE_BINS)
        lower, upper = np.array(curve["bin_lower"]), np.array(curve["bin_upper"])
        accuracy, mean_score = np.array(curve["accuracy"]), np.array(curve["mean_score"])
        ok = np.array(curve["count"]) > 0
        ax.bar(
            ((lower + upper) / 2)[ok], accuracy[ok], width=0.9 / ECE_BINS, alpha=0.7, label="fraction true positive"
        )
        ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
        ax.plot(mean_score[ok], accuracy[ok], "o-", color="C3", ms=3, label="(mean score, fraction TP) per bin")
        ece = curve["ece"]
        ax.set_title(f"{title}\nECE {ece:.4f}")
        ax.set_xlabel("score")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
    axes[0].set_ylabel("fraction of true positives")
    axes[0].legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
