"""The guide's stage order, each stage as a CLI command plus what it reads and writes.

A stage is "up to date" when its outputs exist and the fingerprint of its config sections and
inputs equals the one recorded after its last successful run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..config import MarauderConfig
from ..workspace import Workspace

Paths = Callable[[Workspace, MarauderConfig], list[Path]]
Args = Callable[[Workspace, MarauderConfig], list[str]]


def _none(ws: Workspace, cfg: MarauderConfig) -> list:
    return []


# sections that change how a run is watched, never what it writes: not fingerprinted
NOT_FINGERPRINTED = ("logging",)


@dataclass(frozen=True)
class Stage:
    name: str  # the marauder subcommand
    sections: tuple[str, ...]  # every config section its command reads, but NOT_FINGERPRINTED (a test checks)
    inputs: Paths = _none
    outputs: Paths = _none
    args: Args = _none
    enabled: Callable[[MarauderConfig], bool] = field(default=lambda cfg: True)
    metric: Callable[[Workspace], str | None] = field(default=lambda ws: None)


def _variant_weights(ws: Workspace, cfg: MarauderConfig) -> list[Path]:
    """The ensemble members as the ensemble stage trained them."""
    return [ws.ensemble_dir(name) / "best.pt" for name in cfg.ensemble.variants]


def _multiscale_weights(ws: Workspace, cfg: MarauderConfig) -> list[Path]:
    return [ws.multiscale_dir(name) / "best.pt" for name in cfg.ensemble.variants]


def _deployed_weights(ws: Workspace, cfg: MarauderConfig) -> list[Path]:
    """The models the package carries: the multi-scale fine-tunes when that stage runs, else the
    ensemble members. Calibrate and export both use exactly these (so the calibrated thresholds were
    fitted on the deployed models), and their fingerprints follow these files."""
    return _multiscale_weights(ws, cfg) if cfg.multiscale_training.enabled else _variant_weights(ws, cfg)


def _json_metric(path: Path, *keys: str) -> str | None:
    data = _read_json(path)
    try:
        for key in keys:
            data = data[key]
        return f"{keys[-1]}={float(data):.3f}"
    except (KeyError, TypeError, ValueError):
        return None


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _ensemble_metric(ws: Workspace) -> str | None:
    data = _read_json(ws.ensemble_validation)
    if not data or not data.get("rows"):
        return None
    members = [r for r in data["rows"] if r["kind"] == "member" and r.get("mAP50-95") is not None]
    fused = next((r for r in data["rows"] if r["kind"] == "ensemble"), None)
    if not members or fused is None or fused.get("mAP50-95") is None:
        return None
    return f"fused mAP50-95={fused['mAP50-95']:.3f} (best member {max(r['mAP50-95'] for r in members):.3f})"


def _multiscale_metric(ws: Workspace) -> str | None:
    data = _read_json(ws.multiscale_comparison)
    deltas = [r["AP_small_delta"] for r in (data or {}).get("rows", []) if r.get("AP_small_delta") is not None]
    return f"mean AP_small change={sum(deltas) / len(deltas):+.3f}" if deltas else None


def _calibrate_metric(ws: Workspace) -> str | None:
    data = _read_json(ws.calibration_report)
    try:
        return (f"mAP50-95 {data['map']['ensemble']['mAP50-95']:.3f}->{data['map']['ensemble_tta']['mAP50-95']:.3f}"
                f" with TTA; ECE {data['ece']['before']:.3f}->{data['ece']['after']:.3f}")
    except (TypeError, KeyError):
        return None


def _export_metric(ws: Workspace) -> str | None:
    data = _read_json(ws.parity_report)
    return None if data is None else f"parity {'passed' if data.get('passed') else 'FAILED'}"


def _best_metric(ws: Workspace, stage: str) -> str | None:
    """The last line of a training stage's metrics.jsonl, when it has one."""
    path = ws.stage_metrics(stage)
    try:
        last = json.loads(path.read_text().strip().splitlines()[-1])
    except (OSError, IndexError, ValueError):
        return None
    for key in ("metrics/mAP50-95(B)", "mAP50-95", "metrics/mAP50(B)", "loss", "train_loss"):
        if key in last:
            return f"{key}={float(last[key]):.3f}"
    return None


STAGES: list[Stage] = [
    Stage(
        "download", ("data",),
        outputs=lambda ws, cfg: [ws.fathomnet_metadata],
    ),
    Stage(
        "organize", ("data", "general"),
        inputs=lambda ws, cfg: [ws.fathomnet_images, ws.fathomnet_labels],
        outputs=lambda ws, cfg: [ws.dataset_yaml],
        args=lambda ws, cfg: [
            "--source-images", str(ws.fathomnet_images), "--source-labels", str(ws.fathomnet_labels),
            "--output", str(ws.organized_dir), "--split", *map(str, cfg.data.organize.split),
        ],
    ),
    Stage(
        "ssl-pretrain", ("ssl_pretraining", "data", "general"),
        # organized/: its train/val crops are the probe, its test images are kept out of the pool
        inputs=lambda ws, cfg: [*ws.unlabelled_dirs, ws.fathomnet_images, ws.organized_dir],
        outputs=lambda ws, cfg: [ws.ssl_best],
        enabled=lambda cfg: cfg.ssl_pretraining.enabled,
        metric=lambda ws: _best_metric(ws, "ssl"),
    ),
    Stage(
        "train-baseline", ("baseline_yolo", "ensemble", "general", "checkpointing"),  # ensemble: the one architecture
        inputs=lambda ws, cfg: [ws.organized_dir, *([ws.ssl_best] if cfg.baseline_yolo.use_ssl_backbone else [])],
        outputs=lambda ws, cfg: [ws.baseline_best],
        metric=lambda ws: _best_metric(ws, "baseline"),
    ),
    Stage(
        "active-learn", ("active_learning", "data", "general"),
        inputs=lambda ws, cfg: [ws.baseline_best, *ws.unlabelled_dirs],  # the pool it picks from
        outputs=lambda ws, cfg: [ws.annotation_package],
    ),
    Stage(
        "train-critical", ("critical_species", "baseline_yolo", "general"),
        inputs=lambda ws, cfg: [ws.organized_dir, ws.baseline_best],
        outputs=lambda ws, cfg: [ws.critical_best],
        metric=lambda ws: _best_metric(ws, "critical_species"),
    ),
    Stage(
        "train-ensemble", ("ensemble", "general"),
        inputs=lambda ws, cfg: [ws.organized_dir, ws.critical_best],
        outputs=_variant_weights,
        args=lambda ws, cfg: ["--validate"],
        metric=_ensemble_metric,
    ),
    Stage(
        "train-multiscale", ("multiscale_training", "general"),
        inputs=_variant_weights,
        outputs=_multiscale_weights,
        enabled=lambda cfg: cfg.multiscale_training.enabled,
        metric=_multiscale_metric,
    ),
    Stage(
        "calibrate", ("tta_calibration", "critical_species", "general"),
        inputs=lambda ws, cfg: [*_deployed_weights(ws, cfg), ws.organized_dir],
        outputs=lambda ws, cfg: [ws.pipeline_config, ws.calibrator],
        args=lambda ws, cfg: [
            "--models", *map(str, _deployed_weights(ws, cfg)),
            "--calibration-data", str(ws.organized_images("val")),
        ],
        metric=_calibrate_metric,
    ),
    Stage(
        # evaluation: --validate's split, the package's nms_iou; the training sections: what the package states
        "export", ("export", "deployment", "evaluation", "baseline_yolo", "critical_species", "ensemble",
                   "tta_calibration", "general"),
        inputs=lambda ws, cfg: [*_deployed_weights(ws, cfg), ws.pipeline_config],
        outputs=lambda ws, cfg: [ws.deployment_config],
        args=lambda ws, cfg: [
            "--models", *map(str, _deployed_weights(ws, cfg)),
            "--names", *(p.parent.name for p in _deployed_weights(ws, cfg)),  # as calibrate names them
            "--validate", "--package",
        ],
        metric=_export_metric,
    ),
    Stage(
        "evaluate", ("evaluation", "critical_species", "general"),
        inputs=lambda ws, cfg: [ws.pipeline_config, ws.organized_dir],
        outputs=lambda ws, cfg: [ws.evaluation_report()],
        args=lambda ws, cfg: [
            "--model", str(ws.pipeline_config), "--test-data", str(ws.dataset_yaml),
            "--output", str(ws.evaluation_report().parent),
        ],
        metric=lambda ws: _json_metric(ws.evaluation_report(),
                                       "summary", "mAP50-95"),
    ),
]

STAGE_NAMES = [s.name for s in STAGES]
# The vendor round trip sits between these two stages.
VENDOR_AFTER = "active-learn"
