"""Report figures as PNG bytes (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def pr_curves(precision: np.ndarray, recall_thresholds: np.ndarray, class_names: Sequence[str],
              ap50: Sequence[float]) -> bytes:
    """Interpolated precision vs recall at IoU 0.5, one line per class (COCO precision[0,:,k,0,-1])."""
    fig = _figure(6.5, 4.5)
    ax = fig.add_subplot()
    for k, name in enumerate(class_names):
        p = precision[0, :, k, 0, -1]
        if np.all(p < 0):
            continue  # class without labelled boxes
        ap = ap50[k]
        ax.plot(recall_thresholds, np.clip(p, 0, None), label=f"{name} (AP50 {ap:.3f})")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title="Precision-recall at IoU 0.5")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=7, loc="lower left")
    return _png(fig)


def confusion_plot(matrix: np.ndarray, class_names: Sequence[str]) -> bytes:
    labels = [*class_names, "background"]
    n = len(labels)
    fig = _figure(max(4.0, 0.55 * n + 2), max(3.5, 0.5 * n + 1.5))
    ax = fig.add_subplot()
    col_sum = matrix.sum(axis=0, keepdims=True)
    norm = np.divide(matrix, col_sum, out=np.zeros(matrix.shape, dtype=float), where=col_sum > 0)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            if matrix[i, j]:
                ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(n), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels, fontsize=8)
    ax.set(xlabel="true", ylabel="predicted", title="Confusion matrix (colour: share of each true column)")
    fig.colorbar(im, ax=ax, fraction=0.046)
    return _png(fig)


def reliability_plot(*curves: dict, titles: Sequence[str] = ()) -> bytes:
    """One panel per reliability curve (`evaluate.calibration.reliability`), side by side: the evaluation
    report draws one, the calibrate report raw scores beside calibrated ones."""
    fig = _figure(4.5 * len(curves), 4.2)
    axes = fig.subplots(1, len(curves), sharey=True, squeeze=False)[0]
    for i, (ax, curve) in enumerate(zip(axes, curves)):
        lower, upper = np.asarray(curve["bin_lower"]), np.asarray(curve["bin_upper"])
        acc = np.asarray(curve["accuracy"], dtype=float)
        centers = (lower + upper) / 2
        ax.bar(centers, np.nan_to_num(acc), width=upper - lower, edgecolor="black", alpha=0.7, label="accuracy")
        ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
        mean_score = np.asarray(curve["mean_score"], dtype=float)
        ok = np.isfinite(mean_score)
        ax.plot(mean_score[ok], acc[ok], "o-", color="tab:red", label="accuracy at mean score")
        title = titles[i] if i < len(titles) else "Reliability"
        ax.set(xlabel="detection score", xlim=(0, 1), ylim=(0, 1), title=f"{title} (ECE {curve['ece']:.3f})")
    axes[0].set_ylabel("fraction correct (IoU>=0.5)")
    axes[0].legend(fontsize=7, loc="upper left")
    return _png(fig)


def examples_grid(examples: Sequence, title: str, columns: int = 4) -> bytes:
    """Thumbnails (ErrorExample.crop, RGB) in a captioned grid, composed with OpenCV (fast, no axes)."""
    import cv2

    cell, caption_h, title_h = 160, 18, 26
    n = max(1, len(examples))
    columns = min(columns, n)
    rows = (n + columns - 1) // columns
    canvas = np.full((title_h + rows * (cell + caption_h), columns * cell, 3), 255, dtype=np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(canvas, title, (4, 18), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    if not examples:
        cv2.putText(canvas, "none", (cell // 3, title_h + cell // 2), font, 0.6, (80, 80, 80), 1, cv2.LINE_AA)
    for i, example in enumerate(examples):
        r, c = divmod(i, columns)
        y, x = title_h + r * (cell + caption_h), c * cell
        crop = example.crop[:cell, :cell]
        canvas[y:y + crop.shape[0], x:x + crop.shape[1]] = crop
        cv2.putText(canvas, example.caption()[:26], (x + 2, y + cell + 13), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    ok, png = cv2.imencode(".png", canvas[:, :, ::-1])  # RGB -> BGR for OpenCV
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return png.tobytes()
