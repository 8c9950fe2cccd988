"""Shared fixtures. Expensive things (the sample, a tiny trained model) are built once per session.

Each xdist worker uses one thread so two workers share the two cores without thrashing.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (real underwater sets); tests that need it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real underwater data not available: {SHARED_DATA} is absent (fresh clone)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory) -> Path:
    """The embedded synthetic sample (labelled images + unlabelled pool), generated once."""
    from marauder.data.sample import generate_sample

    out = tmp_path_factory.mktemp("sample") / "sample"
    generate_sample(out, seed=0)
    return out


@pytest.fixture(scope="session")
def organized_sample(sample_dir, tmp_path_factory) -> Path:
    """The sample split into data/organized layout with dataset.yaml (group-aware by dive)."""
    from marauder.data.organize import organize_dataset

    out = tmp_path_factory.mktemp("organized") / "organized"
    organize_dataset(
        source_images=sample_dir / "images", source_labels=sample_dir / "labels", output=out,
        split=(0.6, 0.2, 0.2), seed=0, group_by=r"dive([0-9]+)_",
    )
    return out


@pytest.fixture(scope="session")
def tiny_model(organized_sample, tmp_path_factory) -> Path:
    """A yolov8n trained for 2 epochs at 64 px on the organised sample: real weights, tiny cost."""
    from marauder.engines.ultralytics.train import train_detector

    run = tmp_path_factory.mktemp("tiny_model") / "run"
    result = train_detector(
        "yolov8n", organized_sample / "dataset.yaml", run, epochs=2, imgsz=64, batch=8,
        device="cpu", workers=0, amp=False,
    )
    return result.best


@pytest.fixture(scope="session")
def deployment_package(tiny_model, organized_sample, tmp_path_factory) -> Path:
    """`tiny_model` as a real deployment package (nano_deployment/ plus nano_deployment.tar.gz beside it),
    built through the export package's API. Thresholds are very low because the 2-epoch model scores
    ~1e-3: tests that compare detections then have some to compare."""
    from marauder.config.sections.deploy import DeploymentConfig, ExportConfig
    from marauder.engines.ultralytics.export import export_onnx
    from marauder.export.deployment_config import build_deployment_config, choices_from_config
    from marauder.export.package import archive, build_package

    root = tmp_path_factory.mktemp("deployment_package")
    info = export_onnx(tiny_model, root / "balanced.onnx", imgsz=64)
    names = info["class_names"]
    checks = sorted((organized_sample / "images" / "test").glob("*.jpg"))[:2]
    choices = choices_from_config(["balanced"], {"balanced": 0.0001}, {"method": "wbf"}, 0.0001, names, 0.0005, [])
    config = build_deployment_config(
        class_names=names, imgsz=64, models=[{"name": "balanced", "onnx": "models/balanced.onnx"}], choices=choices,
        export_cfg=ExportConfig(), deploy_cfg=DeploymentConfig(), nms_iou=0.6,
        check_images=[f"samples/{i:02d}_{p.name}" for i, p in enumerate(checks)])
    package = build_package(root / "nano_deployment", onnx_files={"balanced": info["path"]}, engine_files={},
                            config=config, check_images=checks)
    archive(package)
    return package
