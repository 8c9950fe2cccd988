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

import yaml

from ..errors import DataError, MarauderError
from ..infer.pipeline_predictor import build_pipeline, load_member
from ..infer.pipeline_spec import load_pipeline_spec
from ..log import get_logger, progress
from ..runtime.spec import POOLED, ModelSpec, PipelineSpec
from ..runtime.tta import views_from_config
from .data import labelled_batches, resolve_calibration_data
from .fit import ScoredDetections, fit_per_class, save_calibrator_file
from .report import CalibrationRun, build_report, reliability_diagram, report_markdown, summary_line
from .thresholds import choose_class_thresholds, heldout_operating_point

log = get_logger("calibrate")


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

    gts, raw = [], []
    batches = labelled_batches(data, nc, max(1, batch))
    for images, truth in progress(batches, "calibrate: predict", total=math.ceil(len(data.images) / max(1, batch))):
        gts.extend(truth)
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
    report = build_report(CalibrationRun(
        class_names, models, views, data, gts, single, no_tta, with_tta, scored, fit, choices, heldout,
        folds=c.folds, critical=set(critical_species), absent=absent))

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
            ModelSpec(
                name=n,
                path=os.path.relpath(m.resolve(), output_dir.resolve()),
                confidence_threshold=cfg.raw_confidence,
            )
            for n, m in zip(names, models)
        ],
        tta=cfg.tta.model_dump(),
        fusion=cfg.fusion.model_dump(),
        raw_confidence=cfg.raw_confidence,
        calibrator="calibrator.pth",
        calibration=calibration,
        thresholds=thresholds,
        critical_species=[s for s in critical_species if s in class_names],
    )
    from ..fsio import atomic_directory, atomic_write_bytes, atomic_write_json, atomic_write_text

    with atomic_directory(output_dir, replace=True) as tmp:
        atomic_write_text(tmp / "pipeline_config.yaml", _spec_yaml(spec))
        load_pipeline_spec(tmp / "pipeline_config.yaml")  # what we write must read back
        save_calibrator_file(tmp / "calibrator.pth", class_names, calibration, thresholds)
        atomic_write_json(tmp / "report.json", report)
        atomic_write_text(tmp / "report.md", report_markdown(report))
        atomic_write_bytes(tmp / "reliability_diagram.png", reliability_diagram(scored, fit.out_of_fold))
    log.info("calibrate: %s; wrote %s", summary_line(report), output_dir)
    return CalibrateResult(
        output_dir, output_dir / "pipeline_config.yaml", output_dir / "calibrator.pth", report
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
    body = yaml.dump(spec.to_mapping(package=False), Dumper=_FlowListDumper, sort_keys=False, width=110)
    return header + body


