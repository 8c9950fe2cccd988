"""Calibration fitting: TP labelling, each fitter, held-out choice, pooled fallback, calibrator.pth."""

from __future__ import annotations

import numpy as np
import pytest

from marauder.calibrate.fit import (
    ScoredDetections,
    choose_calibrator,
    fit_calibrator,
    fit_per_class,
    label_detections,
    load_calibrator_file,
    log_loss,
    save_calibrator_file,
)
from marauder.evaluate.calibration import expected_calibration_error
from marauder.runtime.calibration import apply_calibrator, apply_per_class
from marauder.types import Detections, GroundTruth


def _logit(p):
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def overconfident(p):  # logits stretched 2.5x: what temperature scaling undoes
    return 1 / (1 + np.exp(-2.5 * _logit(p)))


def overconfident_and_shifted(p):  # stretched and shifted: needs Platt (or isotonic)
    return 1 / (1 + np.exp(-(2.5 * _logit(p) + 1.5)))


def _synthetic(n_images=200, per_image=10, seed=0, distortion=overconfident_and_shifted):
    """True probability p ~ U(0,1); the 'model' reports distortion(p): miscalibrated by construction."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0, 1, n_images * per_image)
    labels = rng.uniform(0, 1, p.shape) < p
    return distortion(p), labels, np.repeat(np.arange(n_images), per_image)


@pytest.mark.parametrize(
    ("method", "distortion"),
    [
        ("temperature", overconfident),
        ("platt", overconfident_and_shifted),
        ("isotonic", overconfident_and_shifted),
    ],
)
def test_each_method_lowers_ece_of_known_miscalibration_on_held_out_images(method, distortion):
    scores, labels, images = _synthetic(distortion=distortion)
    test_scores, test_labels, _ = _synthetic(seed=1, distortion=distortion)
    params = fit_calibrator(method, scores, labels)
    before = expected_calibration_error(test_scores, test_labels)
    after = expected_calibration_error(apply_calibrator(test_scores, params), test_labels)
    assert before > 0.1  # the synthetic scores are badly miscalibrated
    assert after < before / 3, (method, before, after)
    assert log_loss(apply_calibrator(test_scores, params), test_labels) < log_loss(test_scores, test_labels)


def test_temperature_recovers_a_known_temperature():
    rng = np.random.default_rng(3)
    z = rng.normal(0, 2, 20000)
    labels = rng.uniform(size=z.shape) < 1 / (1 + np.exp(-z))
    scores = 1 / (1 + np.exp(-2.5 * z))  # logits multiplied by 2.5: temperature 2.5 undoes it
    assert fit_calibrator("temperature", scores, labels)["t"] == pytest.approx(2.5, rel=0.05)


def test_choice_is_by_held_out_log_loss_and_keeps_identity_when_already_calibrated():
    scores, labels, images = _synthetic(distortion=lambda p: p)
    choice = choose_calibrator(scores, labels, images, ["temperature", "platt", "isotonic"], folds=5)
    assert set(choice.heldout_log_loss) == {"identity", "temperature", "platt", "isotonic"}
    best = min(choice.heldout_log_loss, key=choice.heldout_log_loss.get)
    assert choice.method == best
    # on calibrated scores nothing beats identity by much
    assert choice.heldout_log_loss[best] > choice.heldout_log_loss["identity"] - 0.01


def test_out_of_fold_scores_never_come_from_a_fit_on_the_same_image():
    # images 0..9: label depends on the image only; a calibrator fitted on an image would memorise it
    images = np.repeat(np.arange(10), 50)
    scores = np.tile(np.linspace(0.01, 0.99, 50), 10)
    labels = images % 2 == 0
    choice = choose_calibrator(scores, labels, images, ["isotonic"], folds=5)
    # held out, the score carries no information: no method can get below the base-rate log-loss
    assert min(choice.heldout_log_loss.values()) >= log_loss(np.full(500, 0.5), labels) - 1e-3


def test_per_class_fit_with_pooled_fallback_for_small_and_one_sided_classes():
    s0, y0, i0 = _synthetic(n_images=100, per_image=6, seed=0)
    scores = np.concatenate([s0, [0.9] * 10, [0.2, 0.4, 0.6]])
    labels = np.concatenate([y0, [True] * 10, [False, True, False]])
    class_ids = np.concatenate([np.zeros(len(s0), int), np.ones(10, int), np.full(3, 2)])
    images = np.concatenate([i0, np.arange(10), [0, 1, 2]])
    data = ScoredDetections(scores, class_ids, labels, images, np.ones((100, 3), int))
    fit = fit_per_class(data, 3, ["temperature", "platt", "isotonic"], folds=5, min_samples=5)
    assert set(fit.per_class) == {0}
    assert fit.choices[0].fallback is None
    assert "all 10 detections are true positives" in fit.choices[1].fallback
    assert "3 detections < min_samples_per_class=5" in fit.choices[2].fallback
    assert fit.out_of_fold.shape == scores.shape
    calibrated = fit.apply(scores, class_ids)
    np.testing.assert_allclose(
        calibrated[class_ids == 2], apply_calibrator(scores[class_ids == 2], fit.pooled), rtol=1e-6
    )
    assert expected_calibration_error(
        fit.out_of_fold[class_ids == 0], labels[class_ids == 0]
    ) < expected_calibration_error(scores[class_ids == 0], labels[class_ids == 0])


@pytest.mark.parametrize(
    ("dets", "gt", "expected"),
    [
        # two detections on one fish: only the higher-scoring one is a true positive
        (
            Detections([[0, 0, 10, 10], [1, 0, 10, 10]], [0.6, 0.9], [0, 0], (50, 50)),
            GroundTruth([[0, 0, 10, 10]], [0], (50, 50)),
            [False, True],
        ),
        # right box, wrong class
        (
            Detections([[0, 0, 10, 10]], [0.9], [1], (50, 50)),
            GroundTruth([[0, 0, 10, 10]], [0], (50, 50)),
            [False],
        ),
        # IoU exactly 0.5 counts, just below does not
        (
            Detections([[0, 0, 10, 10], [20, 20, 30, 30]], [0.9, 0.8], [0, 0], (50, 50)),
            GroundTruth([[0, 0, 10, 20], [20, 20, 30, 40.1]], [0, 0], (50, 50)),
            [True, False],
        ),
        (Detections.empty((5, 5)), GroundTruth([[0, 0, 1, 1]], [0], (5, 5)), []),
        (Detections([[0, 0, 1, 1]], [0.5], [0], (5, 5)), GroundTruth(np.zeros((0, 4)), [], (5, 5)), [False]),
    ],
)
def test_label_detections(dets, gt, expected):
    assert label_detections(dets, gt, 0.5).tolist() == expected


def test_calibrator_file_round_trips_without_pickle(tmp_path):
    import torch

    calibration = {
        "fish": {"method": "isotonic", "x": [0.1, 0.5, 0.9], "y": [0.0, 0.4, 1.0]},
        "crab": {"method": "platt", "a": 1.5, "b": -0.25},
        "__pooled__": {"method": "temperature", "t": 1.7},
    }
    path = tmp_path / "calibrator.pth"
    save_calibrator_file(path, ["fish", "crab", "eel"], calibration, {"fish": 0.3, "crab": 0.55})
    raw = torch.load(path, weights_only=True)  # plain tensors and strings only
    assert raw["class_names"] == ["fish", "crab", "eel"]
    back = load_calibrator_file(path)
    assert back["calibration"] == calibration
    assert back["thresholds"]["crab"] == 0.55 and np.isnan(back["thresholds"]["eel"])
    per_class = {0: back["calibration"]["fish"], 1: back["calibration"]["crab"]}
    out = apply_per_class([0.3, 0.3, 0.3], [0, 1, 2], per_class, back["calibration"]["__pooled__"])
    np.testing.assert_allclose(
        out, [apply_calibrator([0.3], calibration[k])[0] for k in ("fish", "crab", "__pooled__")]
    )


class _Fixed:
    def __init__(self, names):
        self.class_names = names

    def predict(self, images):
        return [Detections.empty(im.shape[:2]) for im in images]


def test_models_with_different_class_lists_are_a_clear_error():
    from marauder.errors import MarauderError
    from marauder.infer.pipeline_predictor import build_pipeline

    with pytest.raises(MarauderError, match=r"different class lists: a.pt has \['fish', 'crab'\], b.pt has"):
        build_pipeline([_Fixed(["fish", "crab"]), _Fixed(["crab", "fish"])], None, {}, ["a.pt", "b.pt"])


def test_fusion_weights_repeat_over_each_models_views():
    from marauder.runtime.pipeline import Pipeline
    from marauder.runtime.tta import View

    ens = Pipeline(
        [_Fixed(["fish"]), _Fixed(["fish"])],
        [View(), View(hflip=True)],
        {"method": "wbf", "weights": [3.0, 1.0]},
    )
    box = Detections([[10, 10, 20, 20]], [0.8], [0], (40, 40))
    # model 0 sees the fish in both views, model 1 in neither: WBF score = 0.8 * (3+3) / (3+3+1+1)
    raw = [[[box, box], [Detections.empty((40, 40)), Detections.empty((40, 40))]]]
    fused = ens.fuse_raw(raw)[0]
    assert fused.scores.tolist() == pytest.approx([0.8 * 6 / 8], rel=1e-5)
    assert ens.fuse_raw(raw, views=[0], models=[0])[0].scores.tolist() == pytest.approx([0.8], rel=1e-5)


@pytest.mark.parametrize("params, message", [
    ({"method": "isotonik"}, r"method 'isotonik' is not one of \['identity', 'temperature', 'platt', 'isotonic'\]"),
    ({"method": "isotonic", "x": [0.1, 0.5], "y": [0.2]}, "unusable isotonic parameters"),
    ({"method": "temperature"}, r"method 'temperature' needs \['t'\]; missing \['t'\]"),
    ({"method": "temperature", "t": "warm"}, "unusable temperature parameters"),
    ({"method": "platt", "a": float("nan"), "b": 0.0}, "non-finite"),
])
def test_hand_edited_calibrator_is_an_error_naming_the_class_and_line(tmp_path, params, message):
    """The same check a deployment package gets (marauder.runtime.spec), with the file's line."""
    import yaml

    from marauder.errors import ConfigError
    from marauder.infer.pipeline_spec import load_pipeline_spec

    path = tmp_path / "pipeline_config.yaml"
    doc = {"class_names": ["fish", "ray"], "models": [{"name": "m", "path": "m.pt"}],
           "calibration": {"fish": {"method": "identity"}, "ray": params}}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(ConfigError, match=message) as err:
        load_pipeline_spec(path)
    ray_line = path.read_text().splitlines().index("  ray:") + 1
    assert "calibration.ray" in str(err.value) and err.value.line == ray_line
    doc["calibration"]["ray"] = {"method": "platt", "a": 1.0, "b": 0.0}
    path.write_text(yaml.safe_dump(doc))
    assert load_pipeline_spec(path).calibration["ray"] == {"method": "platt", "a": 1.0, "b": 0.0}


def test_a_pipeline_refuses_calibrators_for_classes_it_does_not_have():
    from marauder.runtime.pipeline import Pipeline

    with pytest.raises(ValueError, match=r"calibration names unknown classes \['ray'\]"):
        Pipeline([_Fixed(["fish"])], calibration={"ray": {"method": "identity"}})
