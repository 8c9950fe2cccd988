"""Annotation guidelines shipped in every package: class list, one example crop per class, box rules.

Produced as Markdown (for people who read the zip) and self-contained-ish HTML (for the vendor's
annotators, opens in any browser; the crops sit beside it in the package).
"""

from __future__ import annotations

import html
from pathlib import Path

import cv2
import numpy as np

from ..formats.yolo import read_labels
from ..fsio import list_images

BOX_RULES = [
    "Draw one tight axis-aligned box per individual animal: the box touches the outermost visible pixels "
    "(fins, spines, arms and antennae included).",
    "Partly hidden animals (behind kelp, rock or another animal): box only the visible part.",
    "Animals cut by the image border: box the part inside the image; never draw outside the frame.",
    "Do not box animals you cannot identify to one of the listed classes; leave them unlabelled.",
    "Do not merge a school into one box; every individual that is at least ~8 px wide gets its own box.",
    "Pre-annotations come from our current model: correct their position and class, delete false ones, "
    "and add every missed animal. Keep image ids and file names exactly as delivered.",
    "An image with no animals of the listed classes stays in the file with zero boxes (that is an answer too).",
]


def example_crops(class_names: list[str], images_dir: Path | None, labels_dir: Path | None,
                  max_files: int = 400, size: int = 160) -> dict[str, bytes]:
    """class name -> JPEG bytes of the largest labelled box seen in the first `max_files` images."""
    if images_dir is None or labels_dir is None or not Path(images_dir).is_dir():
        return {}
    best: dict[int, tuple[float, Path, np.ndarray]] = {}
    for image in list_images(images_dir, recursive=True)[:max_files]:
        rows = read_labels(Path(labels_dir) / image.relative_to(images_dir).with_suffix(".txt"), strict=False)
        for cls, _cx, _cy, w, h in rows:
            c = int(cls)
            if 0 <= c < len(class_names) and w * h > best.get(c, (0.0,))[0]:
                best[c] = (w * h, image, np.array([_cx, _cy, w, h]))
    crops = {}
    for c, (_area, image_path, (cx, cy, w, h)) in sorted(best.items()):
        img = cv2.imread(str(image_path))
        if img is None:
            continue
        ih, iw = img.shape[:2]
        pad_w, pad_h = w * 0.15, h * 0.15  # a little context around the animal
        x1, y1 = int(max(0, (cx - w / 2 - pad_w) * iw)), int(max(0, (cy - h / 2 - pad_h) * ih))
        x2, y2 = int(min(iw, (cx + w / 2 + pad_w) * iw)), int(min(ih, (cy + h / 2 + pad_h) * ih))
        crop = img[y1:y2, x1:x2]
        if crop.size == 0:
            continue
        scale = size / max(crop.shape[:2])
        crop = cv2.resize(crop, (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale))),
                          interpolation=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 90])
        if ok:
            crops[class_names[c]] = buf.tobytes()
    return crops


def example_path(name: str) -> str:
    return f"guidelines/examples/{name}.jpg"


def guidelines_markdown(package_id: str, class_names: list[str], crops: dict[str, bytes], n_images: int) -> str:
    lines = [
        f"# Annotation guidelines — package {package_id}", "",
        f"{n_images} images; boxes in `annotations.json` (COCO). Return the same file with your corrections.", "",
        "## Classes", "", "| id | class | example |", "|---|---|---|",
    ]
    for i, name in enumerate(class_names, start=1):
        ex = f"![{name}](examples/{name}.jpg)" if name in crops else "no example in the labelled data yet"
        lines.append(f"| {i} | {name} | {ex} |")
    lines += ["", "## Drawing boxes", ""] + [f"{n}. {rule}" for n, rule in enumerate(BOX_RULES, start=1)]
    lines += ["", "## Returning the work", "",
              "Send back `annotations.json` (or a zip holding it) with the same `images` entries "
              "(ids and file names unchanged), your `annotations` and the `categories` listed above.", ""]
    return "\n".join(lines)


def guidelines_html(package_id: str, class_names: list[str], crops: dict[str, bytes], n_images: int) -> str:
    e = html.escape
    rows = "".join(
        f"<tr><td>{i}</td><td>{e(n)}</td><td>"
        + (f'<img src="examples/{e(n)}.jpg" alt="{e(n)}" height="120">' if n in crops else "no example yet")
        + "</td></tr>"
        for i, n in enumerate(class_names, start=1)
    )
    rules = "".join(f"<li>{e(r)}</li>" for r in BOX_RULES)
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>Annotation guidelines {e(package_id)}</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}td,th{border:1px solid #ccc;"
        "padding:4px 8px}table{border-collapse:collapse}</style></head><body>"
        f"<h1>Annotation guidelines &mdash; package {e(package_id)}</h1>"
        f"<p>{n_images} images; boxes in <code>annotations.json</code> (COCO). Return the same file with "
        "your corrections.</p><h2>Classes</h2><table><tr><th>id</th><th>class</th><th>example</th></tr>"
        f"{rows}</table><h2>Drawing boxes</h2><ol>{rules}</ol>"
        "<h2>Returning the work</h2><p>Send back <code>annotations.json</code> (or a zip holding it) with the "
        "same <code>images</code> entries (ids and file names unchanged), your <code>annotations</code> and "
        "the categories listed above.</p></body></html>\n"
    )
