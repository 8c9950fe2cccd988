"""Test before overwrite: a new model's report against a baseline's, with tolerances.

NEW fails when its mAP50-95 is lower than the baseline's by more than `map_tolerance`, or when the
recall of any critical species (present in the baseline) drops by more than `recall_tolerance`.
Other numbers are shown for context only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from .report import EvaluationReport

CONTEXT_KEYS = ("mAP50", "mAP75", "AP_small", "AP_medium", "AP_large", "ece", "latency_ms", "throughput_ips")


@dataclass(frozen=True)
class ComparisonRow:
    metric: str
    new: float | None
    baseline: float | None
    tolerance: float | None  # None: shown, not checked
    passed: bool | None

    @property
    def delta(self) -> float | None:
        if self.new is None or self.baseline is None:
            return None
        return self.new - self.baseline


@dataclass
class Comparison:
    rows: list[ComparisonRow] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.passed is not False for r in self.rows)

    @property
    def failures(self) -> list[ComparisonRow]:
        return [r for r in self.rows if r.passed is False]

    def table(self) -> str:
        def f(v, sign=False):
            return "-" if v is None else (f"{v:+.4f}" if sign else f"{v:.4f}")

        header = f"{'metric':<34} {'new':>9} {'baseline':>9} {'delta':>9} {'allowed':>9}  check"
        lines = [header, "-" * len(header)]
        for r in self.rows:
            allowed = "-" if r.tolerance is None else f"-{r.tolerance:.4f}"
            check = {True: "ok", False: "WORSE", None: ""}[r.passed]
            lines.append(f"{r.metric:<34} {f(r.new):>9} {f(r.baseline):>9} {f(r.delta, True):>9} {allowed:>9}  {check}")
        lines.append("result: " + ("PASSED" if self.passed else
                                   "FAILED (" + ", ".join(r.metric for r in self.failures) + ")"))
        return "\n".join(lines)

    __str__ = table

    def to_dict(self) -> dict:
        return {"passed": self.passed,
                "rows": [{"metric": r.metric, "new": r.new, "baseline": r.baseline, "delta": r.delta,
                          "tolerance": r.tolerance, "passed": r.passed} for r in self.rows]}


def _summary(report) -> dict:
    if isinstance(report, EvaluationReport):
        return report.summary
    if isinstance(report, str | Path):
        return EvaluationReport.load(report).summary
    if isinstance(report, dict):
        return report.get("summary", report)
    raise TypeError(f"expected an EvaluationReport, a summary dict or a report.json path, got {type(report)}")


def _number(v) -> float | None:
    return None if v is None or not math.isfinite(float(v)) else float(v)


def _checked(metric: str, new, base, tolerance: float) -> ComparisonRow:
    new, base = _number(new), _number(base)
    if base is None:  # nothing to be worse than
        return ComparisonRow(metric, new, base, tolerance, None)
    if new is None:
        return ComparisonRow(metric, new, base, tolerance, False)
    return ComparisonRow(metric, new, base, tolerance, new >= base - tolerance - 1e-12)


def compare_reports(new, baseline, map_tolerance: float = 0.005, recall_tolerance: float = 0.02) -> Comparison:
    """Compare two reports (EvaluationReport, summary dict or report.json path)."""
    a, b = _summary(new), _summary(baseline)
    rows = [_checked("mAP50-95", a.get("mAP50-95"), b.get("mAP50-95"), map_tolerance)]
    new_crit, base_crit = a.get("critical_recall", {}), b.get("critical_recall", {})
    for name, base_entry in base_crit.items():
        new_recall = new_crit.get(name, {}).get("recall")
        rows.append(_checked(f"recall[{name}]", new_recall, base_entry.get("recall"), recall_tolerance))
    for name in new_crit:
        if name not in base_crit:
            rows.append(ComparisonRow(f"recall[{name}]", new_crit[name].get("recall"), None, None, None))
    rows += [ComparisonRow(k, a.get(k), b.get(k), None, None) for k in CONTEXT_KEYS]
    return Comparison(rows)
