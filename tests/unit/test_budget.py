"""The deployment budget: real architectures measured, over-budget errors that say by how much."""

from __future__ import annotations

import pytest

from marauder.engines.ultralytics.budget import (
    BudgetExceededError,
    check_budget,
    measure_model,
    smaller_models,
)
from marauder.errors import MarauderError


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("yolov8m", ["yolov8s", "yolov8n"]),
        ("yolov8x.yaml", ["yolov8l", "yolov8m", "yolov8s", "yolov8n"]),
        ("yolo11s", ["yolo11n"]),
        ("yolov5lu", ["yolov5mu", "yolov5su", "yolov5nu"]),
        ("yolov8n", []),
        ("checkpoints/baseline/best.pt", []),
    ],
)
def test_smaller_models_of_the_same_family(spec, expected):
    assert smaller_models(spec) == expected


def test_yolov8n_matches_ultralytics_published_size():
    # Ultralytics' model card: YOLOv8n (80 classes) has 3,157,200 parameters, ~8.7-8.9 GFLOPs at 640
    cost = measure_model("yolov8n", imgsz=640, nc=80)
    assert cost.params == 3_157_200
    assert 8.5 < cost.gflops < 9.0


def test_gflops_scale_with_image_area_and_head_with_classes():
    small, large = measure_model("yolov8n", 320, nc=3), measure_model("yolov8n", 640, nc=3)
    assert large.gflops == pytest.approx(4 * small.gflops, rel=0.02)
    assert measure_model("yolov8n", 320, nc=80).params > small.params  # a bigger classification head


def test_within_budget_returns_the_cost():
    cost = check_budget("yolov8n", max_params_m=5.0, max_gflops=10.0, imgsz=640, nc=3)
    assert cost.params_m < 5.0 and cost.gflops < 10.0


def test_over_budget_says_by_how_much_and_suggests_a_model_that_fits():
    with pytest.raises(BudgetExceededError) as err:
        check_budget("yolov8s", max_params_m=5.0, max_gflops=10.0, imgsz=640, nc=3, label="ensemble.variants.x")
    text = str(err.value)
    assert "ensemble.variants.x (yolov8s) is over the deployment budget at 640px" in text
    assert "11.14M params > 5M by 6.14M (+123%)" in text
    assert "28.65 GFLOPs > 10 by 18.65 (+186%)" in text
    assert "use a smaller model_size, e.g. yolov8n (3.01M params, 8.19 GFLOPs)" in text
    assert err.value.exit_code == 2


def test_over_only_on_gflops_mentions_only_gflops():
    with pytest.raises(BudgetExceededError) as err:
        check_budget("yolov8n", max_params_m=5.0, max_gflops=5.0, imgsz=640, nc=3)
    assert "GFLOPs > 5" in str(err.value) and "params >" not in str(err.value)
    assert "raise ensemble.budget" in str(err.value)  # nothing smaller in the family


def test_unknown_architecture_is_a_clear_error():
    with pytest.raises(MarauderError, match="unknown model 'yolov99q'"):
        measure_model("yolov99q", 640)
