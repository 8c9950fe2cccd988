"""Evaluation: COCO metrics (pycocotools-exact, vectorised), operating-point metrics, reports.

Public API:
    coco_metrics(predictions, ground_truths, num_classes) -> dict
    evaluate_model(model, dataset_yaml, ...) -> EvaluationReport
    compare_reports(new, baseline, map_tolerance, recall_tolerance) -> Comparison
    run_evaluation(evaluation_cfg, model, dataset_yaml, baseline=...) -> EvaluationResult  (the stage;
        training stages' --validate use it)
"""

from .coco import coco_metrics
from .compare import Comparison, compare_reports
from .report import EvaluationReport

__all__ = ["Comparison", "EvaluationReport", "EvaluationResult", "coco_metrics", "compare_reports", "evaluate_model",
           "run_evaluation"]


def __getattr__(name):
    # the runner pulls in the data and inference layers; load it only when asked for
    if name == "evaluate_model":
        from .runner import evaluate_model

        return evaluate_model
    if name in ("run_evaluation", "EvaluationResult"):
        from . import stage

        return getattr(stage, name)
    raise AttributeError(name)
