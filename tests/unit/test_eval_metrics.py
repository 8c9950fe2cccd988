"""Operating-point metrics: matcher, confusion matrix, P/R/F1, ECE, bootstrap CI (literal inputs)."""

from __future__ import annotations

import numpy as np
import pytest

from marauder.evaluate.bootstrap import bootstrap_ratio_ci
from marauder.evaluate.calibration import reliability
from marauder.evaluate.coco import coco_metrics
from marauder.evaluate.confusion import confusion_matrix
from marauder.evaluate.matching import greedy_match
from marauder.evaluate.operating import operating_point, resolve_thresholds
from marauder.types import Detections, GroundTruth

A, B, C = [0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]
A_SHIFT = [1, 0, 11, 10]  # IoU with A = 90/110 = 0.818


def det(boxes, scores, classes):
    return Detections(np.array(boxes, dtype=float).reshape(-1, 4), scores, classes, (64, 64))


def gt(boxes, classes):
    return GroundTruth(np.array(boxes, dtype=float).reshape(-1, 4), classes, (64, 64))


# (name, detections, ground truth, class_aware, expected det->gt, expected gt->det)
MATCH_CASES = [
    ("one_hit", det([A], [0.9], [0]), gt([A], [0]), True, [0], [0]),
    ("miss_far", det([C], [0.9], [0]), gt([A], [0]), True, [-1], [-1]),
    ("wrong_class_aware", det([A], [0.9], [1]), gt([A], [0]), True, [-1], [-1]),
    ("wrong_class_agnostic", det([A], [0.9], [1]), gt([A], [0]), False, [0], [0]),
    # two detections on one object: the higher score wins, the other is left unmatched
    ("duplicate", det([A_SHIFT, A], [0.5, 0.9], [0, 0]), gt([A], [0]), True, [-1, 0], [1]),
    # a detection takes the object it overlaps most
    ("best_iou", det([A_SHIFT], [0.9], [0]), gt([[2, 0, 12, 10], A], [0, 0]), True, [0], [0, -1]),
    ("empty_det", det([], [], []), gt([A], [0]), True, [], [-1]),
    ("empty_gt", det([A], [0.9], [0]), gt([], []), True, [-1], []),
]


@pytest.mark.parametrize("name,d,g,aware,exp_d,exp_g", MATCH_CASES, ids=[c[0] for c in MATCH_CASES])
def test_greedy_match(name, d, g, aware, exp_d, exp_g):
    d2g, g2d, _ = greedy_match(d, g, 0.5, class_aware=aware)
    assert d2g.tolist() == exp_d
    assert g2d.tolist() == exp_g


def test_confusion_matrix_with_background():
    # image: object of class 0 found as class 1; object of class 1 missed; false alarm class 0;
    # a detection below the threshold is ignored
    preds = [det([A, C, B], [0.9, 0.8, 0.1], [1, 0, 1])]
    gts = [gt([A, B], [0, 1])]
    m = confusion_matrix(preds, gts, 2, thresholds=0.25)
    expected = np.array([
        [0, 0, 1],  # predicted 0: one false alarm (background column)
        [1, 0, 0],  # predicted 1: one true class-0 object
        [0, 1, 0],  # background row: the class-1 object was missed
    ])
    np.testing.assert_array_equal(m, expected)


def test_confusion_matrix_per_class_thresholds():
    preds = [det([A, B], [0.4, 0.4], [0, 1])]
    gts = [gt([A, B], [0, 1])]
    m = confusion_matrix(preds, gts, 2, thresholds=np.array([0.3, 0.5]))
    assert m[0, 0] == 1 and m[2, 1] == 1 and m[1].sum() == 0


def _op(preds, gts, nc, thr):
    cm = coco_metrics(preds, gts, nc, return_matches=True)
    return operating_point(cm["matches"], [g.class_ids for g in gts], nc, np.asarray(thr, dtype=float))


@pytest.mark.parametrize("thresholds,tp,fp,support", [
    # at 0.25 both hits count and the 0.3 false alarm too
    ([0.25, 0.25], [1, 1], [1, 0], [1, 2]),
    # at 0.5 the class-1 hit (0.4) and the false alarm (0.3) are dropped
    ([0.5, 0.5], [1, 0], [0, 0], [1, 2]),
    # per-class: class 0 strict, class 1 loose
    ([0.95, 0.1], [0, 1], [0, 0], [1, 2]),
])
def test_operating_point_counts(thresholds, tp, fp, support):
    preds = [det([A, C], [0.9, 0.3], [0, 0]), det([B], [0.4], [1])]
    gts = [gt([A, B], [0, 1]), gt([B], [1])]
    op = _op(preds, gts, 2, thresholds)
    assert op.tp.tolist() == tp and op.fp.tolist() == fp and op.support.tolist() == support
    assert op.tp_per_image.sum(0).tolist() == tp


def test_precision_recall_f1_values():
    preds = [det([A, C], [0.9, 0.8], [0, 0])]
    gts = [gt([A, B], [0, 0])]
    op = _op(preds, gts, 1, [0.25])
    assert op.precision[0] == pytest.approx(0.5)
    assert op.recall[0] == pytest.approx(0.5)
    assert op.f1[0] == pytest.approx(0.5)


def test_metrics_of_a_class_without_labels_or_detections_are_nan():
    op = _op([det([A], [0.9], [0])], [gt([A], [0])], 2, [0.25, 0.25])
    assert np.isnan(op.precision[1]) and np.isnan(op.recall[1]) and np.isnan(op.f1[1])


@pytest.mark.parametrize("per_class,names,expected", [
    (None, None, [0.25, 0.25, 0.25]),
    ({"b": 0.7, "zzz": 0.1}, ["a", "b", "c"], [0.25, 0.7, 0.25]),
    (np.array([0.1, 0.2, 0.3]), None, [0.1, 0.2, 0.3]),
])
def test_resolve_thresholds(per_class, names, expected):
    assert resolve_thresholds(3, 0.25, per_class, names).tolist() == pytest.approx(expected)


# (scores, correct, bins, expected ECE)
ECE_CASES = [
    ([0.95, 0.95, 0.15, 0.15], [1, 0, 0, 0], 10, (2 * 0.45 + 2 * 0.15) / 4),
    ([0.75, 0.75, 0.75, 0.75], [1, 1, 1, 0], 10, 0.0),  # 75% right at score 0.75: calibrated
    ([1.0, 1.0], [0, 0], 10, 1.0),
    ([0.0, 0.2], [0, 1], 2, abs(0.1 - 0.5)),  # both in the first of 2 bins (score 0 included)
]


@pytest.mark.parametrize("scores,correct,bins,expected", ECE_CASES)
def test_ece(scores, correct, bins, expected):
    curve = reliability(scores, correct, bins)
    assert curve["ece"] == pytest.approx(expected)
    assert sum(curve["count"]) == len(scores)
    assert len(curve["accuracy"]) == bins


def test_reliability_bins():
    curve = reliability([0.05, 0.55, 0.56], [0, 1, 0], 10)
    assert curve["count"][0] == 1 and curve["count"][5] == 2
    assert curve["accuracy"][5] == pytest.approx(0.5)
    assert curve["mean_score"][5] == pytest.approx(0.555)
    assert np.isnan(curve["accuracy"][3])


def test_ece_of_nothing_is_nan():
    assert np.isnan(reliability([], [], 10)["ece"])


@pytest.mark.parametrize("tp,n,expected_point", [
    ([1, 1, 1, 1], [1, 1, 1, 1], 1.0),
    ([0, 0, 0], [2, 1, 1], 0.0),
    ([1, 0, 2, 1], [1, 1, 2, 2], 4 / 6),
])
def test_bootstrap_point_and_interval(tp, n, expected_point):
    point, low, high = bootstrap_ratio_ci(tp, n, 500, seed=1)
    assert point == pytest.approx(expected_point)
    assert low <= point <= high
    if expected_point in (0.0, 1.0):
        assert low == high == point  # no variation to resample


def test_bootstrap_interval_shrinks_with_more_images_and_is_reproducible():
    rng = np.random.default_rng(0)
    small_tp = rng.integers(0, 2, 20)
    big_tp = rng.integers(0, 2, 2000)
    _, lo_s, hi_s = bootstrap_ratio_ci(small_tp, np.ones(20), 1000, seed=3)
    _, lo_b, hi_b = bootstrap_ratio_ci(big_tp, np.ones(2000), 1000, seed=3)
    assert (hi_b - lo_b) < (hi_s - lo_s) / 4
    assert bootstrap_ratio_ci(small_tp, np.ones(20), 1000, seed=3) == (np.mean(small_tp), lo_s, hi_s)
    # a binomial recall of ~0.5 over 2000 images: the 95% interval is about +-0.022
    assert hi_b - lo_b == pytest.approx(2 * 1.96 * np.sqrt(0.25 / 2000), rel=0.2)


@pytest.mark.parametrize("resamples,tp,n", [(0, [1, 0], [1, 1]), (100, [], []), (100, [0, 0], [0, 0])])
def test_bootstrap_degenerate(resamples, tp, n):
    point, low, high = bootstrap_ratio_ci(tp, n, resamples)
    assert (np.isnan(point) and np.isnan(low)) or (low == high == point)


def test_worst_cases_keep_the_worst_critical_errors():
    from marauder.evaluate.examples import WorstCases

    image = np.zeros((64, 64, 3), dtype=np.uint8)
    worst = WorstCases([0], ["lionfish", "rockfish"], np.array([0.5, 0.5]), limit=2)
    # image 1: lionfish A found; lionfish B missed though a 0.4 detection sits on it; false alarms 0.9 and 0.6
    worst.add("one.jpg", image, det([A, B, C, [0, 40, 10, 50]], [0.9, 0.4, 0.9, 0.6], [0, 0, 0, 0]),
              gt([A, B], [0, 0]))
    # image 2: lionfish missed with nothing near it (worse miss); rockfish errors are not critical
    worst.add("two.jpg", image, det([C], [0.99], [1]), gt([A, B], [0, 1]))
    fns, fps = worst.false_negatives, worst.false_positives
    assert [(e.image, e.score) for e in fns] == [("two.jpg", 0.0), ("one.jpg", pytest.approx(0.4))]
    assert [(e.image, round(e.score, 2)) for e in fps] == [("one.jpg", 0.9), ("one.jpg", 0.6)]
    assert all(e.class_name == "lionfish" and e.crop.shape == (160, 160, 3) for e in fns + fps)
    assert fns[0].to_record()["box"] == [0.0, 0.0, 10.0, 10.0]


def _found(gts, hit_every: int):
    """Detections that find every `hit_every`-th labelled box exactly (score 0.9), others nothing."""
    out = []
    for i, g in enumerate(gts):
        keep = np.arange(len(g)) % hit_every == 0 if i % 2 else np.zeros(len(g), bool)
        keep |= (i % 2 == 0)
        out.append(Detections(g.xyxy[keep], np.full(int(keep.sum()), 0.9), g.class_ids[keep], g.image_size))
    return out


@pytest.mark.parametrize(("hit_a", "hit_b", "sign"), [(1, 1, 0), (1, 3, 1), (3, 1, -1)])
def test_paired_bootstrap_delta(hit_a, hit_b, sign):
    from marauder.evaluate.bootstrap import paired_bootstrap
    from marauder.evaluate.coco import coco_metrics

    rng = np.random.default_rng(0)
    gts = []
    for _ in range(30):
        xy = rng.uniform(0, 300, (4, 2))
        gts.append(GroundTruth(np.c_[xy, xy + 40], np.zeros(4, int), (480, 640)))
    map50 = lambda p, g: coco_metrics(p, g, 1)["mAP50"]  # noqa: E731
    res = paired_bootstrap(map50, _found(gts, hit_a), _found(gts, hit_b), gts, n_resamples=200)
    assert res.resamples == 200 and res.a_ci[0] <= res.a <= res.a_ci[1]
    if sign == 0:
        assert res.delta == 0 and res.delta_ci == (0.0, 0.0) and not res.excludes_zero
    else:
        assert np.sign(res.delta) == sign and res.excludes_zero
        assert np.sign(res.delta_ci[0]) == np.sign(res.delta_ci[1]) == sign
