"""EvaluationReport: the numbers (stable keys), the details behind them, and the figures.

`write(dir)` produces report.json (machine-readable), report.md (for a pull request or a terminal)
and report.html (one self-contained file: figures embedded as base64 PNG), plus plots/*.png.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..fsio import atomic_write_bytes, atomic_write_json, atomic_write_text

SCHEMA_VERSION = 1
HEADLINE_KEYS = ("mAP50-95", "mAP50", "mAP75", "AP_small", "AP_medium", "AP_large")
FIGURE_TITLES = {
    "pr_curves": "Precision-recall per class (IoU 0.5)",
    "confusion_matrix": "Confusion matrix at the operating thresholds",
    "reliability": "Reliability diagram",
    "worst_false_negatives": "Worst missed critical species",
    "worst_false_positives": "Worst false alarms of critical species",
}


def clean_json(value):
    """nan/inf -> None, numpy scalars/arrays -> Python, recursively (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v) for v in value]
    if hasattr(value, "tolist"):
        return clean_json(value.tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value


def _fmt(v, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


@dataclass
class EvaluationReport:
    summary: dict
    details: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    figures: dict[str, bytes] = field(default_factory=dict, repr=False)
    # figures cost a second or two of matplotlib: drawn on first need (write/HTML/Markdown), so
    # callers that only read the numbers (training stages' --validate) never pay for them
    make_figures: Callable[[], dict[str, bytes]] | None = field(default=None, repr=False, compare=False)

    def ensure_figures(self) -> dict[str, bytes]:
        if not self.figures and self.make_figures is not None:
            self.figures = self.make_figures()
            self.make_figures = None
        return self.figures

    def to_json(self) -> dict:
        return clean_json({"schema": SCHEMA_VERSION, "summary": self.summary, "details": self.details,
                           "meta": self.meta})

    @classmethod
    def load(cls, path: str | Path) -> EvaluationReport:
        """Read a report.json written by `write` (figures are not reloaded)."""
        from ..errors import DataError

        path = Path(path)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:  # ValueError: bad JSON or bad UTF-8
            raise DataError(f"cannot read evaluation report: {exc}", file=str(path)) from None
        if not isinstance(doc, dict) or "summary" not in doc:
            raise DataError("not an evaluation report (no 'summary' key)", file=str(path))
        return cls(doc["summary"], doc.get("details", {}), doc.get("meta", {}))

    # -- text renderings ------------------------------------------------------------------------
    def _per_class_rows(self) -> list[list[str]]:
        rows = []
        for name, m in self.summary.get("per_class", {}).items():
            rows.append([name, _fmt(m.get("AP50-95")), _fmt(m.get("AP50")), _fmt(m.get("precision")),
                         _fmt(m.get("recall")), _fmt(m.get("f1")), _fmt(m.get("support")),
                         _fmt(m.get("threshold"), 3)])
        return rows

    def _critical_rows(self) -> list[list[str]]:
        return [[name, _fmt(m.get("recall")), f"[{_fmt(m.get('ci_low'))}, {_fmt(m.get('ci_high'))}]",
                 _fmt(m.get("support"))] for name, m in self.summary.get("critical_recall", {}).items()]

    def to_markdown(self) -> str:
        self.ensure_figures()
        s, meta = self.summary, self.meta
        lines = [f"# Evaluation: {meta.get('model', '?')}", "",
                 f"Dataset `{meta.get('dataset', '?')}`, split `{meta.get('split', '?')}`, "
                 f"{s.get('num_images')} images, imgsz {meta.get('imgsz') or 'model default'}, conf {meta.get('conf')}, "
                 f"NMS IoU {meta.get('iou')}.", "", "| metric | value |", "|---|---|"]
        for key in (*HEADLINE_KEYS, "ece", "latency_ms", "throughput_ips"):
            lines.append(f"| {key} | {_fmt(s.get(key))} |")
        lines += ["", "## Per class (P/R/F1 at the operating threshold, IoU 0.5)", "",
                  "| class | AP50-95 | AP50 | precision | recall | F1 | support | threshold |",
                  "|---|---|---|---|---|---|---|---|"]
        lines += ["| " + " | ".join(r) + " |" for r in self._per_class_rows()]
        if s.get("critical_recall"):
            lines += ["", "## Critical species recall (95% bootstrap CI over images)", "",
                      "| species | recall | 95% CI | support |", "|---|---|---|---|"]
            lines += ["| " + " | ".join(r) + " |" for r in self._critical_rows()]
        cm = self.details.get("confusion_matrix")
        if cm:
            labels = [*self.details.get("class_names", []), "background"]
            lines += ["", "## Confusion matrix (rows predicted, columns true)", "",
                      "| pred \\ true | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
            lines += [f"| {labels[i]} | " + " | ".join(str(v) for v in row) + " |" for i, row in enumerate(cm)]
        if self.figures:
            lines += ["", "## Figures", ""]
            lines += [f"![{FIGURE_TITLES.get(k, k)}](plots/{k}.png)" for k in self.figures]
        return "\n".join(lines) + "\n"

    def to_html(self) -> str:
        self.ensure_figures()
        s, meta = self.summary, self.meta
        esc = html.escape

        def table(header: list[str], rows: list[list[str]]) -> str:
            head = "".join(f"<th>{esc(h)}</th>" for h in header)
            body = "".join("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in r) + "</tr>" for r in rows)
            return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

        headline = table(["metric", "value"], [[k, _fmt(s.get(k))] for k in
                                               (*HEADLINE_KEYS, "ece", "latency_ms", "throughput_ips",
                                                "num_images")])
        parts = [
            "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
            f"<title>Evaluation: {esc(str(meta.get('model', '')))}</title>",
            "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}"
            "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
            "text-align:right}th{background:#eef}figure{margin:1.5em 0}img{max-width:100%}</style>",
            "</head><body>",
            f"<h1>Evaluation: {esc(str(meta.get('model', '')))}</h1>",
            f"<p>Dataset <code>{esc(str(meta.get('dataset', '')))}</code>, split "
            f"<code>{esc(str(meta.get('split', '')))}</code>, imgsz {esc(str(meta.get('imgsz') or 'model default'))}, "
            f"conf {esc(str(meta.get('conf')))}, NMS IoU {esc(str(meta.get('iou')))}.</p>",
            headline,
            "<h2>Per class</h2>",
            table(["class", "AP50-95", "AP50", "precision", "recall", "F1", "support", "threshold"],
                  self._per_class_rows()),
        ]
        if s.get("critical_recall"):
            parts += ["<h2>Critical species recall</h2>",
                      table(["species", "recall", "95% CI", "support"], self._critical_rows())]
        for key, png in self.figures.items():
            data = base64.b64encode(png).decode("ascii")
            title = esc(FIGURE_TITLES.get(key, key))
            parts.append(f"<figure><figcaption><h2>{title}</h2></figcaption>"
                         f"<img class='plot' id='plot-{esc(key)}' alt='{title}' "
                         f"src='data:image/png;base64,{data}'></figure>")
            records = self.details.get(key)
            if key.startswith("worst_") and records:  # which files to open, in the grid's order
                parts.append(table(["image", "class", "score", "box (x1, y1, x2, y2)"],
                                   [[r["image"], r["class_name"], _fmt(r["score"], 3),
                                     ", ".join(f"{v:.0f}" for v in r["box"])] for r in records]))
        parts.append("</body></html>")
        return "\n".join(parts) + "\n"

    def write(self, output_dir: str | Path) -> Path:
        """Write report.json, report.md, report.html and plots/*.png into `output_dir` (atomically each)."""
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        for key, png in self.ensure_figures().items():
            atomic_write_bytes(out / "plots" / f"{key}.png", png)
        atomic_write_json(out / "report.json", self.to_json())
        atomic_write_text(out / "report.md", self.to_markdown())
        atomic_write_text(out / "report.html", self.to_html())
        return out
