"""`run_evaluation`: the evaluation stage from its config section (what `marauder evaluate` and the
training stages' `--validate` call), optionally gated against a baseline."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..fsio import atomic_write_json, atomic_write_text
from .compare import Comparison, compare_reports
from .report import EvaluationReport


@dataclass
class EvaluationResult:
    report: EvaluationReport
    output_dir: Path | None
    baseline: EvaluationReport | None = None
    comparison: Comparison | None = None

    @property
    def passed(self) -> bool:
        """True without a baseline; else whether the model is not worse than it beyond tolerance."""
        return self.comparison is None or self.comparison.passed


def run_evaluation(cfg, model, dataset_yaml, *, critical_species: Sequence[str] = (),
                   output_dir: str | Path | None = None, baseline=None, class_map: dict | None = None,
                   seed: int = 0, device: str | None = None, **overrides) -> EvaluationResult:
    """Evaluate `model` with the `evaluation` config section; compare with `baseline` when given.

    Args:
        cfg: `EvaluationConfig` (split, conf, iou, batch, imgsz, tolerances, bootstrap, ...).
        model: model path or Predictor.
        dataset_yaml: the dataset to evaluate on.
        baseline: a model path / Predictor (evaluated the same way, report in `output_dir/baseline`),
            a report.json path, or an EvaluationReport.
        overrides: split / imgsz / conf / iou / batch values that replace the config's (None = keep).
    """
    from .runner import evaluate_model

    options = dict(split=cfg.split, imgsz=cfg.imgsz, conf=cfg.conf, iou=cfg.iou, batch=cfg.batch)
    options.update({k: v for k, v in overrides.items() if v is not None})
    options.update(critical_species=list(critical_species), operating_conf=cfg.operating_conf,
                   bootstrap=cfg.bootstrap, class_map=class_map, ece_bins=cfg.ece_bins,
                   worst_examples=cfg.worst_examples, seed=seed, device=device)
    out = Path(output_dir) if output_dir is not None else None
    report = evaluate_model(model, dataset_yaml, output_dir=out, **options)
    if baseline is None:
        return EvaluationResult(report, out)
    if isinstance(baseline, EvaluationReport):
        base_report = baseline
    elif isinstance(baseline, str | Path) and Path(baseline).suffix.lower() == ".json":
        base_report = EvaluationReport.load(baseline)
    else:
        base_report = evaluate_model(baseline, dataset_yaml, output_dir=None if out is None else out / "baseline",
                                     **options)
    comparison = compare_reports(report, base_report, cfg.map_tolerance, cfg.recall_tolerance)
    if out is not None:
        label = str(baseline) if isinstance(baseline, str | Path) else base_report.meta.get("model", "baseline")
        atomic_write_json(out / "comparison.json", {"new": report.meta.get("model"), "baseline": label,
                                                    **comparison.to_dict()})
        atomic_write_text(out / "comparison.txt", comparison.table() + "\n")
    return EvaluationResult(report, out, base_report, comparison)
