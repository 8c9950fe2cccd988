"""The embedded sample: a deterministic synthetic underwater detection dataset.

Every frame is painted from a seeded generator: a water-colour gradient that darkens with depth,
a substrate (sand, rock or reef), caustic light near the surface, turbidity haze and marine snow.
Five species are drawn with their own shape, texture and colour family (varied per instance),
at sizes down to small objects, sometimes partly hidden behind kelp or a rock. Some frames are empty.

The same seed always gives the same files, byte for byte, so tests and the demo can rely on it.
Layout written under `output`:

    images/diveNN_frameNNNN.jpg     labels/diveNN_frameNNNN.txt (YOLO)
    classes.txt                      metadata.json (per image: file, dive, boxes)
    unlabelled/images/*.jpg          (same style, no labels: SSL / active-learning pool)
    unlabelled/answer_key/*.txt      (the pool's true boxes, for simulating the annotation vendor)
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..errors import DataError
from ..formats.yolo import format_labels, xyxy_to_rows
from ..fsio import atomic_directory, atomic_write_json, atomic_write_text

SAMPLE_CLASSES: tuple[str, ...] = ("lionfish", "purple_sea_urchin", "abalone", "sea_star", "rockfish")
GROUP_KEY = "dive"
_JPEG_QUALITY = 90


@dataclass(frozen=True)
class SampleInfo:
    root: Path
    classes: tuple[str, ...]
    n_images: int
    n_boxes: int
    n_empty: int
    n_unlabelled: int
    dives: tuple[int, ...]
    class_counts: dict[str, int] = field(default_factory=dict)

    @property
    def images_dir(self) -> Path:
        return self.root / "images"

    @property
    def labels_dir(self) -> Path:
        return self.root / "labels"

    @property
    def unlabelled_dir(self) -> Path:
        return self.root / "unlabelled" / "images"

    @property
    def classes_file(self) -> Path:
        return self.root / "classes.txt"

    @property
    def metadata_file(self) -> Path:
        return self.root / "metadata.json"


# ----------------------------------------------------------------------------------------------
# Scene: water, substrate, light
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Dive:
    """Conditions shared by the frames of one dive (so dives differ like real deployments)."""

    number: int
    depth: float  # 0 = shallow and bright, 1 = deep and dark
    water_top: np.ndarray  # BGR at the top of the frame
    water_bottom: np.ndarray
    substrate: str  # sand | rock | reef
    turbidity: float


def _make_dive(number: int, rng: np.random.Generator) -> _Dive:
    depth = float(rng.uniform(0.0, 1.0))
    # Shallow water is bright cyan-green; deep water is dark blue. BGR.
    shallow = np.array([200, 190, 90], np.float32) + rng.uniform(-25, 25, 3).astype(np.float32)
    deep = np.array([110, 60, 10], np.float32) + rng.uniform(-15, 15, 3).astype(np.float32)
    top = shallow * (1 - 0.6 * depth) + deep * (0.6 * depth)
    bottom = shallow * (0.35 - 0.3 * depth) + deep * (0.65 + 0.3 * depth)
    substrate = ("sand", "rock", "reef")[number % 3]
    return _Dive(number, depth, top, bottom, substrate, float(rng.uniform(0.05, 0.3)))


def _water(h: int, w: int, dive: _Dive, rng: np.random.Generator) -> np.ndarray:
    t = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    t = np.clip(t + rng.uniform(-0.1, 0.1), 0, 1)
    img = dive.water_top[None, None, :] * (1 - t) + dive.water_bottom[None, None, :] * t
    return np.broadcast_to(img, (h, w, 3)).copy()


def _smooth_noise(h: int, w: int, rng: np.random.Generator, cell: int) -> np.ndarray:
    """Value noise in [0,1]: coarse random grid, resized smoothly (cheap, deterministic)."""
    gh, gw = max(2, h // cell + 2), max(2, w // cell + 2)
    grid = rng.random((gh, gw), dtype=np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def _substrate(img: np.ndarray, dive: _Dive, rng: np.random.Generator) -> None:
    h, w = img.shape[:2]
    horizon = int(h * rng.uniform(0.35, 0.65))
    rows = np.arange(h)[:, None]
    # A wavy sea-floor line.
    xs = np.arange(w)[None, :]
    wave = (4 * np.sin(xs / w * 2 * math.pi * rng.uniform(0.5, 2) + rng.uniform(0, 6))).astype(np.int32)
    floor = rows >= (horizon + wave)
    fine = _smooth_noise(h, w, rng, 3)
    coarse = _smooth_noise(h, w, rng, 16)
    if dive.substrate == "sand":
        base = np.array([120, 160, 175], np.float32)
        tex = 0.75 + 0.35 * fine[..., None] * 0.6 + 0.25 * coarse[..., None]
    elif dive.substrate == "rock":
        base = np.array([95, 100, 100], np.float32)
        tex = 0.55 + 0.7 * (coarse[..., None] > 0.5) * 0.4 + 0.35 * fine[..., None]
    else:  # reef: patchy greens, pinks and browns
        base = np.array([90, 120, 110], np.float32)
        tex = 0.6 + 0.5 * fine[..., None]
    floor_col = base[None, None, :] * tex
    if dive.substrate == "reef":
        patches = _smooth_noise(h, w, rng, 10)
        tint = np.where(patches[..., None] > 0.6, np.array([150, 110, 200], np.float32),
                        np.array([70, 140, 90], np.float32))
        floor_col = 0.55 * floor_col + 0.45 * tint * (0.7 + 0.5 * fine[..., None])
    # Light falls off with depth on the floor too.
    floor_col *= 0.9 - 0.45 * dive.depth
    blend = floor[..., None].astype(np.float32)
    img[:] = img * (1 - blend) + floor_col * blend
    # Scattered rocks / coral heads on the floor.
    for _ in range(int(rng.integers(1, 5))):
        cx, cy = int(rng.integers(0, w)), int(rng.integers(horizon, h))
        ax = (int(rng.integers(6, 22)), int(rng.integers(4, 12)))
        shade = float(rng.uniform(50, 110)) * (1 - 0.4 * dive.depth)
        cv2.ellipse(img, (cx, cy), ax, float(rng.uniform(0, 180)), 0, 360,
                    (shade, shade * 1.02, shade * 0.95), -1, cv2.LINE_AA)


def _caustics(img: np.ndarray, dive: _Dive, rng: np.random.Generator) -> None:
    """Rippling light from the surface: strongest near the top and in shallow dives."""
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    f1, f2 = rng.uniform(0.15, 0.35, 2)
    p1, p2 = rng.uniform(0, 2 * math.pi, 2)
    pattern = np.sin(xx * f1 + np.sin(yy * 0.11) * 3 + p1) * np.sin(yy * f2 + np.sin(xx * 0.09) * 3 + p2)
    pattern = np.clip(pattern, 0, None) ** 2
    fade = np.exp(-yy / (h * 0.45)) * (1 - dive.depth) * rng.uniform(25, 55)
    img += (pattern * fade)[..., None]


def _haze(img: np.ndarray, dive: _Dive, rng: np.random.Generator) -> None:
    amount = float(np.clip(dive.turbidity + rng.uniform(-0.05, 0.05), 0, 0.35))
    water = (dive.water_top + dive.water_bottom) / 2
    img[:] = img * (1 - amount) + water[None, None, :] * amount


def _marine_snow(img: np.ndarray, rng: np.random.Generator) -> None:
    h, w = img.shape[:2]
    for _ in range(int(rng.integers(5, 40))):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        v = float(rng.uniform(170, 240))
        cv2.circle(img, (x, y), int(rng.integers(0, 2)), (v, v, v), -1, cv2.LINE_AA)


# ----------------------------------------------------------------------------------------------
# Species: each painter draws onto an object layer and its mask, centred at (cx, cy), length s
# ----------------------------------------------------------------------------------------------
def _jitter(colour, rng: np.random.Generator, amount: float = 25) -> tuple[float, float, float]:
    c = np.clip(np.asarray(colour, np.float32) + rng.uniform(-amount, amount, 3), 0, 255)
    return tuple(float(v) for v in c)


def _rot(points: np.ndarray, angle: float, cx: float, cy: float) -> np.ndarray:
    ca, sa = math.cos(angle), math.sin(angle)
    x, y = points[:, 0], points[:, 1]
    return np.stack([cx + x * ca - y * sa, cy + x * sa + y * ca], axis=1)


def _poly(layer, mask, pts, colour) -> None:
    p = np.round(pts).astype(np.int32)
    cv2.fillPoly(layer, [p], colour, cv2.LINE_AA)
    cv2.fillPoly(mask, [p], 255, cv2.LINE_AA)


def _line(layer, mask, a, b, colour, thickness) -> None:
    a = tuple(int(round(v)) for v in a)
    b = tuple(int(round(v)) for v in b)
    cv2.line(layer, a, b, colour, thickness, cv2.LINE_AA)
    cv2.line(mask, a, b, 255, thickness, cv2.LINE_AA)


def _ellipse_pts(a: float, b: float, n: int = 24) -> np.ndarray:
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    return np.stack([a * np.cos(t), b * np.sin(t)], axis=1)


def _draw_lionfish(layer, mask, cx, cy, s, rng):
    """Banded cream-and-red body inside two big feathery fin fans: a puffy, striped silhouette."""
    angle = float(rng.uniform(-0.5, 0.5)) + (math.pi if rng.random() < 0.5 else 0)
    red, cream = _jitter((40, 50, 170), rng), _jitter((190, 215, 235), rng, 15)
    fin = _jitter((110, 120, 200), rng, 20)
    # Fin fans behind the body (pectoral fans down, dorsal spines up), striped with red spines.
    for side in (-1, 1):
        reach = s * (0.42 + 0.06 * rng.random())
        t = np.linspace(-0.9, 0.9, 9)
        arc = np.stack([reach * np.sin(t) * 0.9, side * reach * np.cos(t) * 0.85], axis=1)
        fan = np.vstack([[[-s * 0.2, 0.0]], arc, [[s * 0.2, 0.0]]])
        _poly(layer, mask, _rot(fan, angle, cx, cy), fin)
        for tip in arc[::2]:
            a = _rot(np.array([[0.0, 0.0], tip]), angle, cx, cy)
            _line(layer, mask, a[0], a[1], red, max(1, int(s / 24)))
    _poly(layer, mask, _rot(_ellipse_pts(s * 0.42, s * 0.17), angle, cx, cy), cream)
    # Bold bands across the body.
    for k in range(-3, 4):
        a = _rot(np.array([[k * s * 0.11, -s * 0.17]]), angle, cx, cy)[0]
        b = _rot(np.array([[k * s * 0.11, s * 0.17]]), angle, cx, cy)[0]
        _line(layer, mask, a, b, red, max(1, int(s / 12)))
    tail = _rot(np.array([[-s * 0.4, 0], [-s * 0.55, -s * 0.12], [-s * 0.55, s * 0.12]]), angle, cx, cy)
    _poly(layer, mask, tail, red)


def _draw_urchin(layer, mask, cx, cy, s, rng):
    """Dark purple ball bristling with spines."""
    r = s * 0.3
    purple = _jitter((110, 30, 90), rng, 20)
    spine = _jitter((150, 50, 120), rng, 20)
    n = int(rng.integers(18, 28))
    for k in range(n):
        t = 2 * math.pi * k / n + rng.uniform(-0.1, 0.1)
        length = r * rng.uniform(1.45, 1.7)
        _line(layer, mask, (cx + r * 0.5 * math.cos(t), cy + r * 0.5 * math.sin(t)),
              (cx + length * math.cos(t), cy + length * math.sin(t)), spine, 1)
    _poly(layer, mask, _ellipse_pts(r, r * rng.uniform(0.85, 1.0)) + [cx, cy], purple)
    cv2.circle(layer, (int(cx - r * 0.3), int(cy - r * 0.3)), max(1, int(r * 0.25)),
               _jitter((170, 90, 160), rng, 10), -1, cv2.LINE_AA)


def _draw_abalone(layer, mask, cx, cy, s, rng):
    """Flat oval shell, mottled brown-green-red, with growth rings and a row of respiratory holes."""
    angle = float(rng.uniform(0, math.pi))
    a, b = s * 0.5, s * 0.34
    shell = _jitter((60, 110, 150), rng, 30)
    _poly(layer, mask, _rot(_ellipse_pts(a, b), angle, cx, cy), shell)
    for k, f in enumerate((0.75, 0.5, 0.28)):
        ring = _rot(_ellipse_pts(a * f, b * f) + [a * (1 - f) * 0.6, 0], angle, cx, cy)
        colour = _jitter((40 + 25 * k, 150 - 20 * k, 120 + 20 * k), rng, 15)
        cv2.polylines(layer, [np.round(ring).astype(np.int32)], True, colour, 1, cv2.LINE_AA)
    for k in range(5):
        t = -0.9 + k * 0.35
        hole = _rot(np.array([[a * 0.78 * math.cos(t + math.pi), b * 0.78 * math.sin(t + math.pi)]]),
                    angle, cx, cy)[0]
        cv2.circle(layer, (int(hole[0]), int(hole[1])), max(1, int(s / 22)), (30, 35, 40), -1, cv2.LINE_AA)


def _draw_sea_star(layer, mask, cx, cy, s, rng):
    """Five tapering arms, bright orange-red-yellow, with pale bumps."""
    angle = float(rng.uniform(0, 2 * math.pi))
    outer, inner = s * 0.5, s * rng.uniform(0.17, 0.23)
    t = angle + np.arange(10) * math.pi / 5
    radius = np.where(np.arange(10) % 2 == 0, outer, inner)
    pts = np.stack([cx + radius * np.cos(t), cy + radius * np.sin(t)], axis=1)
    colour = _jitter(((30, 110, 235), (40, 70, 210), (40, 190, 235))[int(rng.integers(0, 3))], rng, 20)
    _poly(layer, mask, pts, colour)
    for k in range(0, 10, 2):
        for f in (0.35, 0.6):
            p = (cx + outer * f * math.cos(t[k]), cy + outer * f * math.sin(t[k]))
            cv2.circle(layer, (int(p[0]), int(p[1])), max(1, int(s / 28)), _jitter((150, 200, 245), rng, 10),
                       -1, cv2.LINE_AA)


def _draw_rockfish(layer, mask, cx, cy, s, rng):
    """Deep-bodied fish, orange to brown with dark blotches, spiky dorsal fin and forked tail."""
    angle = float(rng.uniform(-0.35, 0.35)) + (math.pi if rng.random() < 0.5 else 0)
    body_col = _jitter(((40, 90, 200), (40, 70, 140), (60, 110, 120))[int(rng.integers(0, 3))], rng, 20)
    dark = tuple(v * 0.5 for v in body_col)
    tail = _rot(np.array([[-s * 0.32, 0], [-s * 0.52, -s * 0.2], [-s * 0.45, 0], [-s * 0.52, s * 0.2]]),
                angle, cx, cy)
    _poly(layer, mask, tail, dark)
    dorsal = _rot(np.array([[-s * 0.2, -s * 0.18], [-s * 0.1, -s * 0.34], [0, -s * 0.22], [s * 0.08, -s * 0.33],
                            [s * 0.18, -s * 0.16]]), angle, cx, cy)
    _poly(layer, mask, dorsal, dark)
    _poly(layer, mask, _rot(_ellipse_pts(s * 0.36, s * 0.22), angle, cx, cy), body_col)
    for _ in range(3):
        p = _rot(np.array([[rng.uniform(-0.2, 0.15) * s, rng.uniform(-0.1, 0.1) * s]]), angle, cx, cy)[0]
        cv2.circle(layer, (int(p[0]), int(p[1])), max(1, int(s / 14)), dark, -1, cv2.LINE_AA)
    eye = _rot(np.array([[s * 0.24, -s * 0.05]]), angle, cx, cy)[0]
    cv2.circle(layer, (int(eye[0]), int(eye[1])), max(1, int(s / 20)), (20, 20, 20), -1, cv2.LINE_AA)


_PAINTERS = (_draw_lionfish, _draw_urchin, _draw_abalone, _draw_sea_star, _draw_rockfish)


def _occlude(img: np.ndarray, box: np.ndarray, dive: _Dive, rng: np.random.Generator) -> None:
    """Hide a slice of an object behind a kelp frond or a boulder (the label keeps the full extent)."""
    x1, y1, x2, y2 = box
    bw, bh = x2 - x1, y2 - y1
    if rng.random() < 0.5:  # kelp: a thin swaying vertical frond
        x = x1 + bw * rng.uniform(0.2, 0.8)
        pts = [(x + 3 * math.sin(y * 0.2), y) for y in np.linspace(y1 - 10, y2 + 10, 12)]
        colour = _jitter((40, 110, 70), rng, 15)
        cv2.polylines(img, [np.round(np.array(pts)).astype(np.int32)], False, colour,
                      max(2, int(bw * 0.18)), cv2.LINE_AA)
    else:  # a boulder covering one corner (at most about a third of the box)
        cx = x1 if rng.random() < 0.5 else x2
        cy = y2
        shade = float(rng.uniform(50, 90)) * (1 - 0.4 * dive.depth)
        cv2.ellipse(img, (int(cx), int(cy)), (max(2, int(bw * 0.35)), max(2, int(bh * 0.35))), 0, 0, 360,
                    (shade, shade, shade * 0.95), -1, cv2.LINE_AA)


def _object_size(w: int, h: int, rng: np.random.Generator) -> float:
    """Object length in pixels: mostly medium, a share small (down to ~8% of the short side)."""
    short = min(w, h)
    if rng.random() < 0.2:
        return float(rng.uniform(0.09, 0.16) * short)
    return float(rng.uniform(0.18, 0.42) * short)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    tl, br = np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])
    inter = float(np.prod(np.clip(br - tl, 0, None)))
    union = float(np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter)
    return inter / union if union > 0 else 0.0


def _render(size: tuple[int, int], dive: _Dive, class_ids: list[int], rng: np.random.Generator):
    """One frame -> (BGR uint8 image, (N,4) pixel xyxy boxes, class ids actually placed)."""
    w, h = size
    img = _water(h, w, dive, rng)
    _substrate(img, dive, rng)
    _caustics(img, dive, rng)
    boxes, placed = [], []
    for cid in class_ids:
        for _attempt in range(12):
            s = _object_size(w, h, rng)
            cx, cy = rng.uniform(s * 0.4, w - s * 0.4), rng.uniform(s * 0.4, h - s * 0.4)
            layer = np.zeros((h, w, 3), np.float32)
            mask = np.zeros((h, w), np.uint8)
            _PAINTERS[cid](layer, mask, cx, cy, s, rng)
            ys, xs = np.nonzero(mask > 96)
            if len(xs) < 6:
                continue
            box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)
            if any(_iou(box, b) > 0.15 for b in boxes):
                continue
            # Depth dims the animal a little so it sits in the scene rather than on top of it.
            shade = 0.95 - 0.25 * dive.depth
            alpha = (mask.astype(np.float32) / 255.0)[..., None]
            img[:] = img * (1 - alpha) + layer * shade * alpha
            boxes.append(box)
            placed.append(cid)
            break
    for box in boxes:
        if rng.random() < 0.2:
            _occlude(img, box, dive, rng)
    _haze(img, dive, rng)
    _marine_snow(img, rng)
    img += rng.normal(0, 3.0, img.shape).astype(np.float32)
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (3, 3), 0)
    out = np.clip(img, 0, 255).astype(np.uint8)
    return out, np.asarray(boxes, np.float32).reshape(-1, 4), placed


def _encode_jpeg(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
    if not ok:  # pragma: no cover - OpenCV cannot fail on a valid uint8 image
        raise DataError("could not encode a sample image as JPEG")
    return buf.tobytes()


def _dive_plan(n_images: int) -> list[int]:
    """Frames per dive: many short dives, so a split by dive still sees varied water in every part."""
    n_dives = int(np.clip(n_images // 8, 3, 20)) if n_images >= 3 else max(1, n_images)
    base, extra = divmod(n_images, n_dives)
    return [base + (1 if i < extra else 0) for i in range(n_dives)]


def generate_sample(
    output: str | Path,
    *,
    seed: int = 0,
    n_images: int = 96,
    image_size: tuple[int, int] = (160, 120),
    n_unlabelled: int = 48,
    replace: bool = False,
) -> SampleInfo:
    """Write the synthetic sample to `output` (atomically) and return what was written.

    image_size is (width, height). An existing `output` is an error unless `replace=True`.
    """
    output = Path(output)
    if n_images < 1 or n_unlabelled < 0:
        raise DataError(f"need at least 1 labelled image and >= 0 unlabelled, got {n_images}/{n_unlabelled}")
    w, h = int(image_size[0]), int(image_size[1])
    if w < 32 or h < 32:
        raise DataError(f"image_size must be at least 32x32, got {w}x{h}")
    if output.exists() and not replace:
        raise DataError("output folder already exists (choose another or remove it)", file=str(output))
    classes = SAMPLE_CLASSES
    n_cls = len(classes)
    records, counts, n_boxes, n_empty = [], dict.fromkeys(classes, 0), 0, 0
    with atomic_directory(output, replace=replace) as tmp:
        (tmp / "images").mkdir()
        (tmp / "labels").mkdir()
        (tmp / "unlabelled" / "images").mkdir(parents=True)
        (tmp / "unlabelled" / "answer_key").mkdir()
        plan = _dive_plan(n_images)
        dives = []
        for d, n_frames in enumerate(plan, start=1):
            dive = _make_dive(d, np.random.default_rng([seed, 1, d]))
            dives.append(d)
            # Every dive cycles through all species so stratified, dive-grouped splits stay possible.
            order = list(np.random.default_rng([seed, 2, d]).permutation(n_cls))
            k = 0
            for f in range(n_frames):
                rng = np.random.default_rng([seed, 3, d, f])
                empty = (n_frames >= 6 and f == n_frames // 2) or rng.random() < 0.05
                n_obj = 0 if empty else int(rng.choice([1, 2, 2, 3]))
                wanted = [int(order[(k + i) % n_cls]) for i in range(n_obj)]
                k += n_obj
                img, boxes, placed = _render((w, h), dive, wanted, rng)
                name = f"dive{d:02d}_frame{f:04d}"
                (tmp / "images" / f"{name}.jpg").write_bytes(_encode_jpeg(img))
                rows = xyxy_to_rows(boxes, np.asarray(placed), (h, w))
                (tmp / "labels" / f"{name}.txt").write_text(format_labels(rows), encoding="utf-8")
                n_boxes += len(placed)
                n_empty += not placed
                for cid in placed:
                    counts[classes[cid]] += 1
                records.append({
                    "file": f"{name}.jpg",
                    GROUP_KEY: d,
                    "depth": round(dive.depth, 3),
                    "substrate": dive.substrate,
                    "boxes": [{"class_id": int(c), "class": classes[c], "xyxy": [round(float(v), 1) for v in b]}
                              for c, b in zip(placed, boxes)],
                })
        # Unlabelled pool: later dives, same painter, labels thrown away.
        first_pool_dive = len(plan) + 1
        pool_dives = max(1, min(4, n_unlabelled // 12 or 1))
        for i in range(n_unlabelled):
            d = first_pool_dive + i % pool_dives
            dive = _make_dive(d, np.random.default_rng([seed, 1, d]))
            rng = np.random.default_rng([seed, 4, i])
            wanted = [int(c) for c in rng.integers(0, n_cls, int(rng.integers(0, 4)))]
            img, boxes, placed = _render((w, h), dive, wanted, rng)
            name = f"dive{d:02d}_frame{i:04d}"
            (tmp / "unlabelled" / "images" / f"{name}.jpg").write_bytes(_encode_jpeg(img))
            # The pool's true boxes, kept apart: the demo plays the annotation vendor with them.
            rows = xyxy_to_rows(boxes, np.asarray(placed), (h, w))
            (tmp / "unlabelled" / "answer_key" / f"{name}.txt").write_text(format_labels(rows), encoding="utf-8")
        atomic_write_text(tmp / "classes.txt", "".join(f"{c}\n" for c in classes))
        atomic_write_json(tmp / "metadata.json", {
            "generator": "marauder sample",
            "seed": seed,
            "image_size": [w, h],
            "classes": list(classes),
            "group_key": GROUP_KEY,
            "images": records,
        })
    return SampleInfo(output, classes, n_images, n_boxes, n_empty, n_unlabelled, tuple(dives), counts)


def install_sample(workspace, *, seed: int = 0, n_images: int = 96, image_size: tuple[int, int] = (160, 120),
                   n_unlabelled: int = 48) -> SampleInfo:
    """Put the sample where the guide's stages look for data in a workspace.

    Labelled frames go to data/fathomnet/ (images, labels, classes.txt, metadata.json) as if
    downloaded; the unlabelled pool goes to data/marauder/images (the "own footage" folder).
    """
    target = workspace.fathomnet_dir
    pool = workspace.marauder_images
    for path in (target, pool):
        if path.exists() and any(path.iterdir()):
            raise DataError("already holds data; use another --workspace or remove it", file=str(path))
    staging = workspace.data_dir / ".sample.staging"
    if staging.exists():  # left by an interrupted run
        shutil.rmtree(staging)
    info = generate_sample(staging, seed=seed, n_images=n_images, image_size=image_size,
                           n_unlabelled=n_unlabelled)
    pool.parent.mkdir(parents=True, exist_ok=True)
    for path in (target, pool):
        if path.exists():
            path.rmdir()  # empty (checked above)
    # Pool first, then the labelled set: each is one rename, so neither is seen half-written.
    (staging / "unlabelled" / "images").replace(pool)
    answer_key = pool.parent / "answer_key"
    shutil.rmtree(answer_key, ignore_errors=True)
    (staging / "unlabelled" / "answer_key").replace(answer_key)
    (staging / "unlabelled").rmdir()
    staging.replace(target)
    return SampleInfo(target, info.classes, info.n_images, info.n_boxes, info.n_empty, info.n_unlabelled,
                      info.dives, info.class_counts)
