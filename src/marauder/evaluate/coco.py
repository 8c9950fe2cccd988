"""COCO box evaluation in vectorised numpy, numerically the same as pycocotools' COCOeval.

pycocotools matches detections to ground truth with a Python loop per image x class x area range x
IoU threshold. The greedy rule is sequential only within one (image, class) group, so we run it for
every group, area range and IoU threshold at once: step r handles the r-th best detection of every
group that has one. Groups are bucketed by padded size so a few crowded images do not blow up the
padded arrays. Accumulation (precision envelope, 101-point interpolation) repeats pycocotools'
floating-point operations in the same order, so stats agree to rounding.

Conventions that match pycocotools exactly:
  * detections per (image, class) sorted by score (stable), truncated to max(max_dets);
  * a ground truth is ignored in an area range when its area is outside [lo, hi] (both inclusive);
    an unmatched detection is ignored when its own area is outside the range;
  * a detection takes the unmatched ground truth with the highest IoU >= t, preferring
    non-ignored ones; on equal IoU the later ground truth wins (pycocotools' `<` comparison);
  * classes without non-ignored ground truth get -1 and are left out of the means;
  * a crowd ground truth (`GroundTruth.iscrowd`) is ignored in every area range, its IoU with a
    detection is intersection over the detection's area, and any number of detections may match it
    (each such detection is ignored: neither a true nor a false positive).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import DataError
from ..types import Detections, GroundTruth

IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
MAX_DETS = (1, 10, 100)
AREA_RANGES = {"all": (0.0, 1e5**2), "small": (0.0, 32.0**2), "medium": (32.0**2, 96.0**2),
               "large": (96.0**2, 1e5**2)}
STAT_NAMES = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large",
              "AR1", "AR10", "AR100", "AR_small", "AR_medium", "AR_large")


@dataclass
class _Flat:
    """Detections (or ground truth) of all images as flat arrays, sorted by (image, class) group."""

    boxes: np.ndarray  # (N, 4) float64 xyxy
    areas: np.ndarray  # (N,)
    classes: np.ndarray  # (N,)
    images: np.ndarray  # (N,)
    scores: np.ndarray  # (N,) (zeros for ground truth)
    crowd: np.ndarray  # (N,) bool (False for detections)
    rank: np.ndarray  # (N,) position inside its group
    group_start: np.ndarray  # (num_groups,) offset of each group in the flat arrays
    group_count: np.ndarray  # (num_groups,)


def _areas(boxes: np.ndarray) -> np.ndarray:
    # pycocotools: w * h of the xywh box (loadRes) -- no +1, negative sizes are not clipped there
    # either, but boxes with x2 < x1 are invalid input for both.
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _flatten(items: Sequence[Detections] | Sequence[GroundTruth], num_classes: int, what: str,
             max_per_group: int | None) -> _Flat:
    counts = np.fromiter((len(x.class_ids) for x in items), dtype=np.int64, count=len(items))
    total = int(counts.sum())
    boxes = np.zeros((total, 4), dtype=np.float64)
    classes = np.zeros(total, dtype=np.int64)
    scores = np.zeros(total, dtype=np.float64)
    crowd = np.zeros(total, dtype=bool)
    images = np.repeat(np.arange(len(items), dtype=np.int64), counts)
    has_scores = what == "predictions"
    pos = 0
    for item, n in zip(items, counts.tolist()):
        if n:
            boxes[pos:pos + n] = item.xyxy
            classes[pos:pos + n] = item.class_ids
            if has_scores:
                scores[pos:pos + n] = item.scores
            elif getattr(item, "iscrowd", None) is not None:
                crowd[pos:pos + n] = item.iscrowd
            pos += n
    bad = np.flatnonzero((classes < 0) | (classes >= num_classes))
    if bad.size:
        i = int(bad[0])
        raise DataError(f"{what} of image #{int(images[i])} have class id {int(classes[i])}, "
                        f"outside the dataset's {num_classes} classes (0..{num_classes - 1})")
    finite = np.isfinite(boxes).all(axis=1) & np.isfinite(scores)
    if not finite.all():
        i = int(np.flatnonzero(~finite)[0])
        raise DataError(f"{what} of image #{int(images[i])} have a NaN or infinite box or score")
    group = images * num_classes + classes
    # stable: by group, then score descending, then original order (pycocotools' mergesort)
    order = np.lexsort((-scores, group)) if has_scores else np.argsort(group, kind="stable")
    group = group[order]
    num_groups = len(items) * num_classes
    group_count = np.bincount(group, minlength=num_groups)
    group_start = np.concatenate([[0], np.cumsum(group_count)[:-1]])
    rank = np.arange(total, dtype=np.int64) - group_start[group]
    if max_per_group is not None:
        keep = rank < max_per_group
        order, rank, group = order[keep], rank[keep], group[keep]
        group_count = np.minimum(group_count, max_per_group)
        group_start = np.concatenate([[0], np.cumsum(group_count)[:-1]])
    b = boxes[order]
    return _Flat(b, _areas(b), classes[order], images[order], scores[order], crowd[order], rank, group_start,
                 group_count)


def _pairwise_iou(d: np.ndarray, g: np.ndarray, g_crowd: np.ndarray) -> np.ndarray:
    """IoU of padded boxes (B, D, 4) x (B, G, 4) -> (B, D, G), the way pycocotools' bbIou computes it
    (against a crowd box (B, G) the union is the detection's own area)."""
    dx, dy = d[:, :, None, 0], d[:, :, None, 1]
    dw, dh = d[:, :, None, 2] - dx, d[:, :, None, 3] - dy
    gx, gy = g[:, None, :, 0], g[:, None, :, 1]
    gw, gh = g[:, None, :, 2] - gx, g[:, None, :, 3] - gy
    iw = np.minimum(dx + dw, gx + gw) - np.maximum(dx, gx)
    ih = np.minimum(dy + dh, gy + gh) - np.maximum(dy, gy)
    inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
    union = np.where(g_crowd[:, None, :], dw * dh, dw * dh + gw * gh - inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def _next_pow2(x: np.ndarray) -> np.ndarray:
    return np.left_shift(1, np.ceil(np.log2(np.maximum(x, 1))).astype(np.int64))


def match_detections(dets: _Flat, gts: _Flat, iou_thresholds: np.ndarray,
                     area_ranges: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedy COCO matching for every area range and IoU threshold.

    Returns (matched (A,T,N) bool, ignored (A,T,N) bool, gt_index (A,T,N) int, -1 when unmatched)
    for the N flat detections.
    """
    n_area, n_iou, n_det = len(area_ranges), len(iou_thresholds), len(dets.scores)
    matched = np.zeros((n_area, n_iou, n_det), dtype=bool)
    matched_gt = np.full((n_area, n_iou, n_det), -1, dtype=np.int64)
    lo, hi = area_ranges[:, 0][:, None], area_ranges[:, 1][:, None]
    det_out = (dets.areas[None] < lo) | (dets.areas[None] > hi)  # (A, N)
    ignored = np.broadcast_to(det_out[:, None, :], (n_area, n_iou, n_det)).copy()
    gt_ig = (gts.areas[None] < lo) | (gts.areas[None] > hi) | gts.crowd[None]  # (A, M)
    thr = np.minimum(iou_thresholds, 1 - 1e-10)

    both = np.flatnonzero((dets.group_count > 0) & (gts.group_count > 0))
    if both.size == 0:
        return matched, ignored, matched_gt
    nd, ng = dets.group_count[both], gts.group_count[both]
    bucket_key = (_next_pow2(nd) << 32) | _next_pow2(ng)
    for key in np.unique(bucket_key):
        sel = both[bucket_key == key]
        sel = sel[np.argsort(-dets.group_count[sel], kind="stable")]  # active groups form a prefix
        D, G = int(key >> 32), int(key & 0xFFFFFFFF)
        d_cnt, g_cnt = dets.group_count[sel], gts.group_count[sel]
        d_idx = dets.group_start[sel][:, None] + np.arange(D)[None]
        g_idx = gts.group_start[sel][:, None] + np.arange(G)[None]
        d_real = np.arange(D)[None] < d_cnt[:, None]
        g_real = np.arange(G)[None] < g_cnt[:, None]
        d_idx = np.where(d_real, d_idx, 0)
        g_idx = np.where(g_real, g_idx, 0)
        g_crowd = gts.crowd[g_idx] & g_real  # (B, G)
        iou = _pairwise_iou(dets.boxes[d_idx], gts.boxes[g_idx], g_crowd)  # (B, D, G)
        g_ignored = gt_ig[:, g_idx]  # (A, B, G)
        # taken[a, t, b, g]: ground truth already matched; padding counts as taken
        taken = np.broadcast_to(~g_real[None, None], (n_area, n_iou, len(sel), G)).copy()
        for r in range(D):
            active = int(np.count_nonzero(d_cnt > r))
            if active == 0:
                break
            iou_r = iou[:active, r, :]  # (b, G)
            ok = ~taken[:, :, :active] & (iou_r[None] >= thr[:, None, None])[None]  # (A, T, b, G)
            # prefer non-ignored ground truth: shift ignored ones below every non-ignored IoU (>= 0.5)
            key_r = np.where(g_ignored[:, None, :active], iou_r[None, None] - 2.0, iou_r[None, None])
            key_r = np.where(ok, key_r, -3.0)
            # last index among equal maxima, like pycocotools' loop
            pick = G - 1 - np.argmax(key_r[..., ::-1], axis=-1)  # (A, T, b)
            best = np.take_along_axis(key_r, pick[..., None], axis=-1)[..., 0]
            hit = best > -2.5
            a_i, t_i, b_i = np.nonzero(hit)
            p_i = pick[a_i, t_i, b_i]
            solo = ~g_crowd[b_i, p_i]  # a crowd box takes any number of detections
            taken[a_i[solo], t_i[solo], b_i[solo], p_i[solo]] = True
            det_flat = d_idx[:active, r]  # (b,)
            matched[:, :, det_flat] = hit
            matched_gt[a_i, t_i, det_flat[b_i]] = g_idx[b_i, p_i]
            ign = ignored[:, :, det_flat]
            ign[a_i, t_i, b_i] = g_ignored[a_i, b_i, p_i]
            ignored[:, :, det_flat] = ign
    return matched, ignored, matched_gt


def _accumulate(dets: _Flat, gts: _Flat, matched: np.ndarray, ignored: np.ndarray, num_classes: int,
                area_ranges: np.ndarray, max_dets: Sequence[int], rec_thrs: np.ndarray):
    """precision (T,R,K,A,M), recall (T,K,A,M) and scores (T,R,K,A,M) as pycocotools' accumulate."""
    n_t, n_r, n_a, n_m = matched.shape[1], len(rec_thrs), len(area_ranges), len(max_dets)
    precision = -np.ones((n_t, n_r, num_classes, n_a, n_m))
    recall = -np.ones((n_t, num_classes, n_a, n_m))
    scores_out = -np.ones((n_t, n_r, num_classes, n_a, n_m))
    lo, hi = area_ranges[:, 0][:, None], area_ranges[:, 1][:, None]
    gt_ig = (gts.areas[None] < lo) | (gts.areas[None] > hi) | gts.crowd[None]
    npig_all = np.stack([np.bincount(gts.classes[~gt_ig[a]], minlength=num_classes) for a in range(n_a)])
    # all detections of one class in pycocotools' order: score desc, then image, then rank (stable)
    order = np.lexsort((dets.rank, dets.images, -dets.scores, dets.classes))
    cls_sorted = dets.classes[order]
    bounds = np.searchsorted(cls_sorted, np.arange(num_classes + 1))
    eps = np.spacing(1)
    # gather once so each class is a contiguous slice below
    matched_sorted, ignored_sorted = matched[:, :, order], ignored[:, :, order]
    rank_sorted, score_sorted = dets.rank[order], dets.scores[order]
    for k in range(num_classes):
        lo_k, hi_k = bounds[k], bounds[k + 1]
        rank_k, score_k = rank_sorted[lo_k:hi_k], score_sorted[lo_k:hi_k]
        for a in range(n_a):
            npig = int(npig_all[a, k])
            if npig == 0:
                continue
            m_k, ig_k = matched_sorted[a, :, lo_k:hi_k], ignored_sorted[a, :, lo_k:hi_k]  # (T, n)
            for mi, max_det in enumerate(max_dets):
                if max_det >= max(max_dets):  # everything kept already (truncated in _flatten)
                    dtm, dtig, sc = m_k, ig_k, score_k
                else:
                    keep = rank_k < max_det
                    dtm, dtig, sc = m_k[:, keep], ig_k[:, keep], score_k[keep]
                nd = sc.size
                tps = dtm & ~dtig
                fps = ~dtm & ~dtig
                tp_sum = np.cumsum(tps, axis=1).astype(dtype=float)
                fp_sum = np.cumsum(fps, axis=1).astype(dtype=float)
                rc = tp_sum / npig
                pr = tp_sum / (fp_sum + tp_sum + eps)
                recall[:, k, a, mi] = rc[:, -1] if nd else 0
                # precision envelope: max over higher-recall points
                pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
                for t in range(n_t):
                    q = np.zeros(n_r)
                    ss = np.zeros(n_r)
                    inds = np.searchsorted(rc[t], rec_thrs, side="left")
                    valid = inds < nd
                    q[valid] = pr[t, inds[valid]]
                    ss[valid] = sc[inds[valid]]
                    precision[t, :, k, a, mi] = q
                    scores_out[t, :, k, a, mi] = ss
    return precision, recall, scores_out


def _mean_valid(x: np.ndarray) -> float:
    x = x[x > -1]
    return float(np.mean(x)) if x.size else -1.0


def summarize(precision: np.ndarray, recall: np.ndarray, iou_thresholds: np.ndarray,
              max_dets: Sequence[int]) -> np.ndarray:
    """The 12 numbers of COCOeval.summarize() (same order as pycocotools' `stats`)."""
    m_last = len(max_dets) - 1

    def ap(iou=None, area=0):
        p = precision[:, :, :, area, m_last]
        if iou is not None:
            p = p[np.isclose(iou_thresholds, iou)]
        return _mean_valid(p)

    def ar(area=0, m=m_last):
        return _mean_valid(recall[:, :, area, m])

    return np.array([
        ap(), ap(0.5), ap(0.75), ap(area=1), ap(area=2), ap(area=3),
        ar(m=0), ar(m=min(1, m_last)), ar(), ar(area=1), ar(area=2), ar(area=3),
    ])


def coco_metrics(predictions: Sequence[Detections], ground_truths: Sequence[GroundTruth], num_classes: int,
                 *, iou_thresholds: np.ndarray | None = None, max_dets: Sequence[int] = MAX_DETS,
                 return_matches: bool = False) -> dict:
    """COCO bbox metrics of `predictions` against `ground_truths` (one entry per image, same order).

    Args:
        predictions: detections per image (pixel xyxy, scores, class ids in [0, num_classes)).
        ground_truths: labelled boxes per image, same pixel convention.
        num_classes: classes of the dataset; ids outside [0, num_classes) are an error.
        iou_thresholds: default 0.50:0.05:0.95.
        max_dets: detections kept per image and class (pycocotools' maxDets), default (1, 10, 100).
        return_matches: also return the per-detection match arrays (for callers that need them).

    Returns:
        dict with "stats" (the 12 pycocotools numbers), named entries "mAP50-95", "mAP50", "mAP75",
        "AP_small", "AP_medium", "AP_large", "AR1", "AR10", "AR100", "AR_small", "AR_medium",
        "AR_large", per-class "ap_per_class" / "ap50_per_class" / "ap75_per_class" (nan for classes
        without ground truth), "precision" (T,R,K,A,M), "recall" (T,K,A,M), "scores" (T,R,K,A,M),
        "iou_thresholds", "recall_thresholds".

    Raises:
        DataError: lists of different lengths, or class ids outside the dataset.
    """
    if len(predictions) != len(ground_truths):
        raise DataError(f"{len(predictions)} predictions for {len(ground_truths)} images")
    iou_thr = IOU_THRESHOLDS if iou_thresholds is None else np.asarray(iou_thresholds, dtype=np.float64)
    max_dets = [int(m) for m in max_dets]
    area_ranges = np.array(list(AREA_RANGES.values()), dtype=np.float64)
    dets = _flatten(predictions, num_classes, "predictions", max(max_dets))
    gts = _flatten(ground_truths, num_classes, "ground truth", None)
    matched, ignored, matched_gt = match_detections(dets, gts, iou_thr, area_ranges)
    precision, recall, scores = _accumulate(dets, gts, matched, ignored, num_classes, area_ranges, max_dets,
                                            RECALL_THRESHOLDS)
    stats = summarize(precision, recall, iou_thr, max_dets)
    out: dict = {"stats": stats.tolist()}
    out.update({name: float(v) for name, v in zip(("mAP50-95", "mAP50", "mAP75") + STAT_NAMES[3:], stats)})

    def per_class(p: np.ndarray) -> list[float]:
        vals = []
        for k in range(num_classes):
            v = _mean_valid(p[:, :, k])
            vals.append(float("nan") if v == -1 else v)
        return vals

    p_all = precision[:, :, :, 0, -1]
    out["ap_per_class"] = per_class(p_all)
    out["ap50_per_class"] = per_class(p_all[np.isclose(iou_thr, 0.5)])
    out["ap75_per_class"] = per_class(p_all[np.isclose(iou_thr, 0.75)])
    out.update(precision=precision, recall=recall, scores=scores, iou_thresholds=iou_thr,
               recall_thresholds=RECALL_THRESHOLDS)
    if return_matches:
        out["matches"] = {"matched": matched, "ignored": ignored, "gt_index": matched_gt,
                          "det_image": dets.images, "det_class": dets.classes, "det_score": dets.scores}
    return out
