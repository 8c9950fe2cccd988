"""What the vendor changed compared with our pre-annotations, box by box and per class.

Per image, vendor boxes and model boxes are paired greedily by IoU (highest first, class ignored,
pairs need IoU >= match_iou). A pair is `unchanged`, `moved` (IoU < moved_iou), `relabelled`
(class differs; it may also have moved) ; a vendor box without partner was `added`, a model box
without partner was `deleted`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np

from ..types import box_iou

CHANGES = ("added", "deleted", "moved", "relabelled", "unchanged")


@dataclass(frozen=True)
class BoxChange:
    image: str
    change: str
    class_before: str
    class_after: str
    iou: float
    box_before: tuple[float, ...]
    box_after: tuple[float, ...]


def diff_image(image: str, before: list[tuple[int, tuple]], after: list[tuple[int, tuple]],
               class_names: list[str], match_iou: float, moved_iou: float) -> list[BoxChange]:
    """before/after: [(class id, xyxy)] for one image."""
    ious = box_iou(np.array([b for _, b in before]).reshape(-1, 4), np.array([a for _, a in after]).reshape(-1, 4))
    pairs = []
    if ious.size:
        order = np.dstack(np.unravel_index(np.argsort(-ious, axis=None, kind="stable"), ious.shape))[0]
        used_b, used_a = set(), set()
        for i, j in order:
            if ious[i, j] < match_iou:
                break
            if i in used_b or j in used_a:
                continue
            used_b.add(i)
            used_a.add(j)
            pairs.append((int(i), int(j)))
    name = class_names.__getitem__
    out = []
    for i, j in sorted(pairs):
        (cb, bb), (ca, ba) = before[i], after[j]
        iou = float(ious[i, j])
        change = "relabelled" if cb != ca else ("moved" if iou < moved_iou else "unchanged")
        out.append(BoxChange(image, change, name(cb), name(ca), round(iou, 4), _r(bb), _r(ba)))
    matched_b, matched_a = {i for i, _ in pairs}, {j for _, j in pairs}
    for i, (cb, bb) in enumerate(before):
        if i not in matched_b:
            out.append(BoxChange(image, "deleted", name(cb), "", 0.0, _r(bb), ()))
    for j, (ca, ba) in enumerate(after):
        if j not in matched_a:
            out.append(BoxChange(image, "added", "", name(ca), 0.0, (), _r(ba)))
    return out


def _r(box) -> tuple[float, ...]:
    return tuple(round(float(v), 2) for v in box)


def summarize(changes: list[BoxChange], class_names: list[str]) -> dict[str, dict[str, int]]:
    """class -> change -> count. Deleted boxes count for the model's class, the rest for the vendor's."""
    table = {c: dict.fromkeys(CHANGES, 0) for c in class_names}
    for ch in changes:
        cls = ch.class_before if ch.change == "deleted" else ch.class_after
        table[cls][ch.change] += 1
    return table


def relabel_pairs(changes: list[BoxChange]) -> dict[str, int]:
    """'lionfish -> rockfish' -> count."""
    return dict(Counter(f"{c.class_before} -> {c.class_after}" for c in changes if c.change == "relabelled"))


def changes_as_rows(changes: list[BoxChange]) -> list[dict]:
    return [asdict(c) for c in changes]


def plot_summary(table: dict[str, dict[str, int]], path) -> None:
    """Stacked bars per class (added / deleted / moved / relabelled): what a reviewer looks at first."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = list(table)
    fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(classes)), 3.2))
    bottom = np.zeros(len(classes))
    for change in CHANGES[:-1]:
        values = np.array([table[c][change] for c in classes])
        ax.bar(classes, values, bottom=bottom, label=change)
        bottom += values
    ax.set_ylabel("boxes")
    ax.set_title("Vendor changes vs model pre-annotations")
    ax.legend(fontsize=8)
    plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
