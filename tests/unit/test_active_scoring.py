"""Uncertainty scores, candidate keeping, k-center greedy, vendor COCO checks and the QA diff."""

from __future__ import annotations

import math

import numpy as np
import pytest

from marauder.active.qa_diff import diff_image, relabel_pairs, summarize
from marauder.active.scoring import (
    band_score,
    box_distributions,
    entropy_uncertainty,
    image_score,
    least_confidence,
    margin_uncertainty,
    random_score,
)
from marauder.active.selection import Candidate, TopCandidates, k_center_greedy, select
from marauder.active.vendor_coco import (
    PackageImage,
    check_against_package,
    map_categories,
    normalize_name,
    parse_coco,
)
from marauder.errors import DataError
from marauder.types import Detections


def dets(scores, class_ids=None, class_scores=None):
    n = len(scores)
    d = Detections(np.tile([0, 0, 10, 10], (n, 1)), scores, class_ids if class_ids is not None else [0] * n, (20, 20))
    if class_scores is not None:
        d.extra["class_scores"] = np.asarray(class_scores, dtype=np.float32)
    return d


# -- scores ---------------------------------------------------------------------------------------

def test_distribution_adds_background_and_sums_to_one():
    q = box_distributions(dets([0.8], class_scores=[[0.8, 0.2]]), 2)
    assert q.shape == (1, 3)
    np.testing.assert_allclose(q[0], np.array([0.8, 0.2, 0.2]) / 1.2)


def test_distribution_without_class_vector_uses_predicted_class():
    q = box_distributions(dets([0.6], class_ids=[1]), 3)
    np.testing.assert_allclose(q[0], [0, 0.6, 0, 0.4])


@pytest.mark.parametrize("q, lc, margin, ent", [
    ([1.0, 0.0], 0.0, 0.0, 0.0),  # certain
    ([0.5, 0.5], 0.5, 1.0, 1.0),  # coin flip
    ([0.7, 0.3], 0.3, 0.6, -(0.7 * math.log(0.7) + 0.3 * math.log(0.3)) / math.log(2)),
])
def test_per_box_measures(q, lc, margin, ent):
    q = np.array([q])
    assert least_confidence(q)[0] == pytest.approx(lc)
    assert margin_uncertainty(q)[0] == pytest.approx(margin)
    assert entropy_uncertainty(q)[0] == pytest.approx(ent)


def test_uncertain_box_outranks_confident_one_for_every_measure():
    confident = dets([0.95], class_scores=[[0.95, 0.01]])
    unsure = dets([0.5], class_scores=[[0.5, 0.45]])
    for strategy in ("least_confidence", "margin", "entropy"):
        assert image_score(strategy, unsure, 2) > image_score(strategy, confident, 2), strategy


def test_lionfish_vs_rockfish_confusion_is_caught_by_margin():
    """Same confidence, but one box is torn between two classes: margin and entropy must see it."""
    clear = dets([0.6], class_scores=[[0.6, 0.02]])
    torn = dets([0.6], class_scores=[[0.6, 0.58]])
    assert image_score("margin", torn, 2) > image_score("margin", clear, 2)
    assert image_score("entropy", torn, 2) > image_score("entropy", clear, 2)


@pytest.mark.parametrize("confs, expected", [
    ([], 0.0),
    ([0.1, 0.9], 0.0),  # outside the band
    ([0.5], 1.0),  # dead centre
    ([0.3], 0.0),  # on the edge
    ([0.4, 0.6, 0.95], 0.5),  # two at half weight: the image is as borderline as its most borderline box
    ([0.35] * 10, 0.25),  # crowding adds nothing
])
def test_band_score(confs, expected):
    assert band_score(np.array(confs), 0.3, 0.7) == pytest.approx(expected)


def test_a_crowded_frame_does_not_outrank_one_truly_borderline_box():
    crowded, single = band_score(np.array([0.35] * 10), 0.3, 0.7), band_score(np.array([0.5]), 0.3, 0.7)
    assert single > crowded


def test_image_score_empty_and_floor():
    assert image_score("entropy", Detections.empty((10, 10)), 3) == 0.0
    assert image_score("entropy", dets([0.01]), 3, floor=0.05) == 0.0  # below the floor
    weak, weaker = image_score("entropy", dets([0.01]), 3), image_score("entropy", dets([0.002]), 3)
    assert 0 < weaker < weak < 0.1  # near-certain background: little doubt, but still an ordering


def test_random_is_reproducible_and_seeded():
    a = random_score("ab" * 32, 0)
    assert a == random_score("ab" * 32, 0) and 0 <= a < 1
    assert a != random_score("ab" * 32, 1)
    assert image_score("random", Detections.empty(), 1, sha256="ab" * 32, seed=0) == a


def test_unknown_strategy():
    with pytest.raises(ValueError, match="unknown strategy"):
        image_score("vibes", dets([0.5]), 1)


# -- candidates and diversity -----------------------------------------------------------------------

def cand(i, score, emb=None):
    return Candidate(f"img{i}.jpg", "pool", f"{i:064x}", score, Detections.empty(), emb)


def test_top_candidates_bounded_and_stable():
    top = TopCandidates(3)
    for i, s in enumerate([0.1, 0.9, 0.5, 0.9, 0.2, 0.7]):
        top.offer(cand(i, s))
    assert len(top) == 3
    assert [c.path for c in top.best_first()] == ["img1.jpg", "img3.jpg", "img5.jpg"]


def test_k_center_spreads_over_clusters():
    rng = np.random.default_rng(0)
    centers = np.eye(4) * 10
    feats = np.concatenate([c + rng.normal(0, 0.01, (10, 4)) for c in centers])
    picks = k_center_greedy(feats, 4, first=0)
    assert picks[0] == 0
    assert sorted(i // 10 for i in picks) == [0, 1, 2, 3]  # one per cluster, not four of the first


def test_k_center_sees_small_differences_on_a_large_shared_component():
    """An early model's features are nearly the same for every frame; centring keeps the differences."""
    offsets = np.repeat(np.eye(3), 5, axis=0) * 1e-6
    feats = np.full((15, 3), 0.1) + offsets + np.random.default_rng(1).normal(0, 1e-9, (15, 3))
    assert sorted(i // 5 for i in k_center_greedy(feats.astype(np.float32), 3)) == [0, 1, 2]


def test_select_with_diversity_prefers_spread_among_uncertain():
    # 6 near-identical frames of one clip score highest; two other clips score a bit lower
    clip = [cand(i, 0.9 - i * 0.001, np.array([1.0, 0, 0])) for i in range(6)]
    others = [cand(10, 0.5, np.array([0, 1.0, 0])), cand(11, 0.4, np.array([0, 0, 1.0]))]
    plain = select(clip + others, 3, diversity=False)
    diverse = select(clip + others, 3, diversity=True)
    assert [c.path for c in plain] == ["img0.jpg", "img1.jpg", "img2.jpg"]
    assert [c.path for c in diverse] == ["img0.jpg", "img10.jpg", "img11.jpg"]


def test_select_never_trades_uncertain_for_certain():
    pool = [cand(i, 0.5, np.array([1.0, 0])) for i in range(3)] + [cand(9, 0.0, np.array([0, 1.0]))]
    assert "img9.jpg" not in [c.path for c in select(pool, 2, diversity=True)]


# -- vendor COCO structure --------------------------------------------------------------------------

def coco(**over):
    doc = {"images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 50}],
           "annotations": [{"id": 7, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 10]}],
           "categories": [{"id": 1, "name": "Lionfish"}]}
    doc.update(over)
    return doc


@pytest.mark.parametrize("doc, message", [
    ([], "top level must be an object"),
    ({"images": [], "annotations": []}, "top level: missing key 'categories'"),
    (coco(images={}), "'images' must be a list"),
    (coco(images=[{"file_name": "a.jpg"}]), r"images\[0\]: missing key 'id'"),
    (coco(images=[{"id": "1", "file_name": "a.jpg"}]), r"images\[0\]: 'id' must be an integer, got str"),
    (coco(images=[{"id": True, "file_name": "a.jpg"}]), r"'id' must be an integer, got bool"),
    (coco(images=[{"id": 1, "file_name": "a.jpg", "width": -3}]), r"images\[0\] \(id 1\): 'width' must be a positive"),
    (coco(images=[{"id": 1, "file_name": "a"}, {"id": 1, "file_name": "b"}]), r"images\[1\] \(id 1\): duplicate"),
    (coco(annotations=[{"id": 7, "image_id": 1, "category_id": 1}]), r"annotations\[0\] \(id 7\): missing key 'bbox'"),
    (coco(annotations=[{"id": 7, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3]}]), "list of 4 numbers"),
    (coco(annotations=[{"id": 7, "image_id": 1, "category_id": 1, "bbox": [1, float("nan"), 3, 4]}]),
     r"annotations\[0\] \(id 7\): bbox\[1\] must be a finite number, got NaN"),
    (coco(annotations=[{"id": 7, "image_id": 1, "category_id": 1, "bbox": [1, "2", 3, 4]}]),
     r"bbox\[1\] must be a finite number, got '2'"),
    (coco(annotations=[{"image_id": 1, "category_id": 1.5, "bbox": [1, 2, 3, 4]}]),
     r"annotations\[0\]: 'category_id' must be an integer, got float"),
    (coco(annotations=["box"]), r"annotations\[0\]: must be an object"),
    (coco(categories=[{"id": 1, "name": ""}]), r"categories\[0\]: 'name' must be a non-empty string"),
    (coco(categories=[{"id": 1, "name": "a"}, {"id": 1, "name": "b"}]), r"categories\[1\]: duplicate category id"),
])
def test_malformed_coco_names_the_item(doc, message):
    with pytest.raises(DataError, match=message) as err:
        parse_coco(doc, "vendor.json")
    assert str(err.value).startswith("vendor.json: ")


@pytest.mark.parametrize("a, b", [("Purple Sea Urchin", "purple_sea_urchin"), ("  LIONFISH ", "lionfish"),
                                  ("sea-star", "Sea Star"), ("rock\tfish", "rock fish")])
def test_normalize_name(a, b):
    assert normalize_name(a) == normalize_name(b)


def test_map_categories_with_aliases():
    mapping, unknown = map_categories({1: "Lionfish", 2: "Pterois volitans", 3: "octopus", 4: "ABALONE"},
                                      ["lionfish", "abalone"], {"pterois  volitans": "Lionfish"})
    assert mapping == {1: 0, 2: 0, 4: 1} and unknown == {3: "octopus"}


def test_content_checks_reject_with_reasons():
    pkg = {1: PackageImage(1, "images/a.jpg", 100, 50), 2: PackageImage(2, "images/b.jpg", 100, 50),
           3: PackageImage(3, "images/c.jpg", 100, 50)}
    doc = coco(
        images=[{"id": 1, "file_name": "a.jpg", "width": 100, "height": 50},
                {"id": 2, "file_name": "wrong.jpg"}, {"id": 99, "file_name": "x.jpg"}],
        annotations=[
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 10]},  # ok
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [10.5, 10, 20, 10]},  # duplicate of 1
            {"id": 3, "image_id": 1, "category_id": 1, "bbox": [95, 5, 6, 5]},  # overhangs 1 px: clipped
            {"id": 4, "image_id": 1, "category_id": 1, "bbox": [90, 5, 40, 5]},  # far outside
            {"id": 5, "image_id": 1, "category_id": 1, "bbox": [5, 5, 0, 5]},  # zero area
            {"id": 6, "image_id": 1, "category_id": 2, "bbox": [5, 5, 5, 5]},  # unknown category
            {"id": 8, "image_id": 1, "category_id": 9, "bbox": [5, 5, 5, 5]},  # category not listed
            {"id": 9, "image_id": 2, "category_id": 1, "bbox": [5, 5, 5, 5]},  # on rejected image
            {"id": 10, "image_id": 42, "category_id": 1, "bbox": [5, 5, 5, 5]},  # unknown image
        ],
        categories=[{"id": 1, "name": "Lionfish"}, {"id": 2, "name": "Octopus"}])
    out = check_against_package(parse_coco(doc, "v.json"), pkg, ["lionfish"], {}, tolerance=0.02,
                                duplicate_iou=0.9)
    reasons = {r.item: r.reason for r in out.rejections}
    assert reasons == {
        "images[1] (id 2)": "file name 'wrong.jpg' does not match the package's 'images/b.jpg' for id 2",
        "images[2] (id 99)": "unknown image id 99: not in the package",
        "annotations[1] (id 2)": "duplicate of annotations[0] (id 1) (IoU 0.95)",
        "annotations[3] (id 4)": "box [90, 5, 130, 10] lies outside the 100x50 image by more than the 2% tolerance",
        "annotations[4] (id 5)": "zero-area box (w=0, h=5)",
        "annotations[5] (id 6)": "unknown category 'Octopus' (id 2)",
        "annotations[6] (id 8)": "category id 9 is not listed in 'categories'",
        "annotations[7] (id 9)": "belongs to rejected image id 2",
        "annotations[8] (id 10)": "unknown image id 42: not among the returned package images",
    }
    assert [(b.item, b.xyxy) for b in out.boxes[1]] == [("annotations[0] (id 1)", (10, 10, 30, 20)),
                                                        ("annotations[2] (id 3)", (95, 5, 100, 10))]
    assert [b.item for b in out.clipped] == ["annotations[2] (id 3)"]
    assert out.missing == [3] and out.unknown_categories == {2: "Octopus"}


# -- QA diff --------------------------------------------------------------------------------------

def test_qa_diff_every_kind_of_change():
    names = ["lionfish", "abalone"]
    before = [(0, (0, 0, 10, 10)), (0, (20, 20, 30, 30)), (1, (40, 40, 50, 50)), (0, (60, 60, 70, 70))]
    after = [(0, (0, 0, 10, 10)),  # unchanged
             (0, (22, 20, 32, 30)),  # moved (IoU 0.67)
             (0, (40, 40, 50, 50)),  # relabelled abalone -> lionfish
             (1, (80, 80, 90, 90))]  # added; (60..70) deleted
    changes = diff_image("a.jpg", before, after, names, match_iou=0.3, moved_iou=0.9)
    kinds = sorted((c.change, c.class_before, c.class_after) for c in changes)
    assert kinds == [("added", "", "abalone"), ("deleted", "lionfish", ""), ("moved", "lionfish", "lionfish"),
                     ("relabelled", "abalone", "lionfish"), ("unchanged", "lionfish", "lionfish")]
    moved = next(c for c in changes if c.change == "moved")
    assert moved.iou == pytest.approx(80 / 120, abs=1e-4)
    table = summarize(changes, names)
    assert table == {"lionfish": {"added": 0, "deleted": 1, "moved": 1, "relabelled": 1, "unchanged": 1},
                     "abalone": {"added": 1, "deleted": 0, "moved": 0, "relabelled": 0, "unchanged": 0}}
    assert relabel_pairs(changes) == {"abalone -> lionfish": 1}


def _candidate(i: int, score: float, zero: bool = False):
    from marauder.active.selection import Candidate

    extra = {"rank": (i * 7919 % 101) / 101, "zero_detection": True} if zero else {}
    return Candidate(f"img{i}.jpg", "pool", f"{i:064x}", score, Detections.empty((10, 10)), None, extra)


@pytest.mark.parametrize(("num_samples", "share", "n_scored", "n_blind", "want_blind"), [
    (10, 0.2, 50, 50, 2),  # the reserved share
    (10, 0.0, 50, 50, 0),  # switched off
    (10, 0.2, 50, 1, 1),  # fewer blind spots than the share: all of them
    (10, 0.2, 3, 50, 7),  # too few frames with detections: blind spots fill the package
    (10, 1.0, 50, 50, 10),
])
def test_frames_without_detections_get_their_share(num_samples, share, n_scored, n_blind, want_blind):
    from marauder.active.select_stage import pick_package
    from marauder.config.sections.stages import ActiveLearningConfig

    cfg = ActiveLearningConfig(num_samples=num_samples, zero_detection_share=share, diversity=False)
    scored = [_candidate(i, 1.0 - i / 100) for i in range(n_scored)]
    blind = [_candidate(1000 + i, 0.0, zero=True) for i in range(n_blind)]
    picked = pick_package(scored, blind, cfg)
    assert len(picked) == min(num_samples, n_scored + n_blind)
    assert sum(1 for c in picked if c.extra.get("zero_detection")) == want_blind
    chosen_blind = [c for c in picked if c.extra.get("zero_detection")]
    assert chosen_blind == sorted(blind, key=lambda c: c.extra["rank"])[:want_blind]  # seeded, reproducible
    assert [c for c in picked if not c.extra] == scored[:len(picked) - want_blind]  # the rest by score
