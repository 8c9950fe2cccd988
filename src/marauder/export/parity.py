"""--validate: does each exported model behave like its PyTorch original?

Two checks per model:
  1. Metrics: the evaluation suite on the test split, PyTorch vs export: |mAP50-95 change| and every
     class's |recall change| within the configured tolerances.
  2. Fidelity on fixed check images: the same letterboxed input through PyTorch and the export; the
     largest box difference (original-image pixels) and score difference over the candidate anchors.
A JSON and a Markdown report are written; any failure makes `marauder export` exit non-zero.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..config.sections.deploy import EvaluationConfig, ExportConfig
from ..fsio import atomic_write_json, atomic_write_text
from ..log import get_logger
from ..runtime.backends import OnnxBackend
from ..runtime.postprocess import xywh2xyxy
from ..runtime.preprocess import letterbox, to_blob

log = get_logger("export")


@dataclass
class ModelParity:
    name: str
    exported: str
    original: str
    max_box_diff_px: float
    max_score_diff: float
    candidates: int
    map_original: float | None = None
    map_exported: float | None = None
    recall: dict[str, dict] = field(default_factory=dict)  # class -> {original, exported, diff}
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


def fidelity(pt_path: Path, onnx_path: Path, images: list[np.ndarray], score_floor: float = 0.001) -> dict:
    """Largest box (px, original image) and score differences between PyTorch and ONNX outputs."""
    from ..engines.ultralytics.export import torch_raw_output

    backend = OnnxBackend(onnx_path, providers=["CPUExecutionProvider"])
    boxed = [letterbox(image, backend.input_hw) for image in images]
    blobs = [to_blob([padded]) for padded, _ in boxed]
    refs = torch_raw_output(pt_path, np.concatenate(blobs)) if blobs else []  # one PyTorch load, one pass
    box_diff, score_diff, candidates = 0.0, 0.0, 0
    for (_, lb), blob, ref in zip(boxed, blobs, refs):
        if backend.batch and backend.batch > 1:
            blob = np.repeat(blob, backend.batch, axis=0)
        ref = ref.T  # (anchors, 4 + nc)
        out = backend.run(blob)[0].T
        scores_ref, scores_out = ref[:, 4:], out[:, 4:]
        score_diff = max(score_diff, float(np.abs(scores_ref - scores_out).max()))
        live = np.maximum(scores_ref.max(1), scores_out.max(1)) > score_floor  # anchors that can become boxes
        candidates += int(live.sum())
        if live.any():
            gain = np.array([lb.gain_x, lb.gain_y, lb.gain_x, lb.gain_y], dtype=np.float64)
            a = xywh2xyxy(ref[live, :4].astype(np.float64)) / gain
            b = xywh2xyxy(out[live, :4].astype(np.float64)) / gain
            box_diff = max(box_diff, float(np.abs(a - b).max()))
    return {"max_box_diff_px": box_diff, "max_score_diff": score_diff, "candidates": candidates}


def _evaluate(model, dataset_yaml: Path, eval_cfg: EvaluationConfig, imgsz: int):
    from ..evaluate.runner import evaluate_model

    return evaluate_model(model, dataset_yaml, split=eval_cfg.split, imgsz=imgsz, conf=eval_cfg.conf,
                          iou=eval_cfg.iou, batch=eval_cfg.batch, bootstrap=0, worst_examples=0,
                          operating_conf=eval_cfg.operating_conf, device="cpu")


def validate_model(name: str, pt_path: Path, exported: Path, *, dataset_yaml: Path | None,
                   images: list[np.ndarray], cfg: ExportConfig, eval_cfg: EvaluationConfig,
                   imgsz: int) -> ModelParity:
    fid = fidelity(pt_path, exported, images) if exported.suffix == ".onnx" else \
        {"max_box_diff_px": float("nan"), "max_score_diff": float("nan"), "candidates": 0}
    result = ModelParity(name, str(exported), str(pt_path), **fid)
    if fid["max_box_diff_px"] > cfg.max_box_diff_px:
        result.failures.append(f"box difference {fid['max_box_diff_px']:.3f} px > {cfg.max_box_diff_px} px")
    if fid["max_score_diff"] > cfg.max_score_diff:
        result.failures.append(f"score difference {fid['max_score_diff']:.2e} > {cfg.max_score_diff:.0e}")
    if dataset_yaml is not None:
        original = _evaluate(str(pt_path), dataset_yaml, eval_cfg, imgsz).summary
        export = _evaluate(str(exported), dataset_yaml, eval_cfg, imgsz).summary
        result.map_original, result.map_exported = original.get("mAP50-95"), export.get("mAP50-95")
        if result.map_original is not None and result.map_exported is not None:
            d = abs(result.map_exported - result.map_original)
            if d > cfg.map_tolerance:
                result.failures.append(f"mAP50-95 {result.map_exported:.4f} vs {result.map_original:.4f} "
                                       f"(|diff| {d:.4f} > {cfg.map_tolerance})")
        for cls, m in original.get("per_class", {}).items():
            r0, r1 = m.get("recall"), export.get("per_class", {}).get(cls, {}).get("recall")
            if r0 is None or r1 is None:
                continue
            d = abs(r1 - r0)
            result.recall[cls] = {"original": r0, "exported": r1, "diff": d}
            if d > cfg.recall_tolerance:
                result.failures.append(f"recall[{cls}] {r1:.4f} vs {r0:.4f} (|diff| {d:.4f} > "
                                       f"{cfg.recall_tolerance})")
    log.info("parity %s: box %.4f px, score %.2e, mAP %s -> %s: %s", name, result.max_box_diff_px,
             result.max_score_diff, result.map_original, result.map_exported,
             "PASSED" if result.passed else "FAILED: " + "; ".join(result.failures))
    return result


def write_reports(results: list[ModelParity], out_dir: Path, cfg: ExportConfig) -> tuple[Path, Path]:
    def num(v):
        return None if v is None or (isinstance(v, float) and np.isnan(v)) else v

    doc = {
        "passed": all(r.passed for r in results),
        "tolerances": {"map": cfg.map_tolerance, "recall": cfg.recall_tolerance,
                       "box_px": cfg.max_box_diff_px, "score": cfg.max_score_diff},
        "models": [dict({k: num(v) for k, v in asdict(r).items()}, passed=r.passed) for r in results],
    }
    json_path = atomic_write_json(out_dir / "parity_report.json", doc)

    def fmt(v, spec=".4f"):
        return "-" if num(v) is None else format(v, spec)

    lines = ["# Export parity report", "",
             f"Result: **{'PASSED' if doc['passed'] else 'FAILED'}**. Tolerances: |mAP50-95 change| <= "
             f"{cfg.map_tolerance}, |recall change| <= {cfg.recall_tolerance} per class, box <= "
             f"{cfg.max_box_diff_px} px, score <= {cfg.max_score_diff}.", "",
             "| model | exported | mAP50-95 PyTorch | mAP50-95 export | max box diff (px) | max score diff | result |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r.name} | {Path(r.exported).name} | {fmt(r.map_original)} | {fmt(r.map_exported)} | "
                     f"{fmt(r.max_box_diff_px)} | {fmt(r.max_score_diff, '.2e')} | "
                     f"{'ok' if r.passed else 'FAILED'} |")
    for r in results:
        if r.recall:
            lines += ["", f"## {r.name}: recall per class", "", "| class | PyTorch | export | abs diff |",
                      "|---|---|---|---|"]
            lines += [f"| {c} | {v['original']:.4f} | {v['exported']:.4f} | {v['diff']:.4f} |"
                      for c, v in r.recall.items()]
        if r.failures:
            lines += ["", f"**{r.name} failed:** " + "; ".join(r.failures)]
    md_path = atomic_write_text(out_dir / "parity_report.md", "\n".join(lines) + "\n")
    return json_path, md_path
