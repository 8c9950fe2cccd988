"""Package integrity, deployment config reading, engine checks and the runtime's import rules."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest
import yaml

from marauder.runtime.backends import REBUILD_HINT, TensorRTBackend, check_engine_meta
from marauder.runtime.config import load_deployment_config
from marauder.runtime.errors import BackendUnavailable, EngineMismatchError, PackageError
from marauder.runtime.package import MANIFEST, verify_package, write_manifest

RUNTIME = Path(__file__).resolve().parents[2] / "src" / "marauder" / "runtime"
CONFIG = {"class_names": ["fish", "crab"], "imgsz": 64,
          "models": [{"name": "a", "onnx": "models/a.onnx"}], "thresholds": {"fish": 0.3}}


def make_package(tmp_path: Path, config: dict = CONFIG) -> Path:
    pkg = tmp_path / "pkg"
    (pkg / "models").mkdir(parents=True)
    (pkg / "models" / "a.onnx").write_bytes(b"not really onnx, checksums only")
    (pkg / "deployment_config.yaml").write_text(yaml.safe_dump(config))
    write_manifest(str(pkg), ["models/a.onnx", "deployment_config.yaml"])
    return pkg


def test_intact_package_verifies(tmp_path):
    assert verify_package(make_package(tmp_path)) == 2


def test_tampered_file_is_named(tmp_path):
    pkg = make_package(tmp_path)
    (pkg / "models" / "a.onnx").write_bytes(b"tampered")
    with pytest.raises(PackageError, match=r"checksum mismatch.*models/a.onnx"):
        verify_package(pkg)


def test_missing_file_is_named(tmp_path):
    pkg = make_package(tmp_path)
    (pkg / "models" / "a.onnx").unlink()
    with pytest.raises(PackageError, match=r"missing: models/a.onnx"):
        verify_package(pkg)


def test_missing_manifest_and_bad_line(tmp_path):
    pkg = make_package(tmp_path)
    (pkg / MANIFEST).write_text("abc  models/a.onnx\n")
    with pytest.raises(PackageError, match=r"SHA256SUMS:1: not a sha256sum line"):
        verify_package(pkg)
    (pkg / MANIFEST).unlink()
    with pytest.raises(PackageError, match="not a complete deployment package"):
        verify_package(pkg)


@pytest.mark.parametrize(("listed", "message"), [
    ([], "lists no files"),  # an empty manifest proved nothing ("0 files match")
    (["deployment_config.yaml"], "does not list models/a.onnx"),
    (["models/a.onnx"], "does not list deployment_config.yaml"),
])
def test_a_partial_manifest_is_refused(tmp_path, listed, message):
    pkg = make_package(tmp_path)
    write_manifest(str(pkg), listed)
    with pytest.raises(PackageError, match=message):
        verify_package(pkg)


def test_a_swapped_model_is_caught_by_the_configs_digest(tmp_path):
    from marauder.runtime.package import sha256_of

    make_package(tmp_path)
    digest = sha256_of(tmp_path / "pkg" / "models" / "a.onnx")
    config = {**CONFIG, "models": [{"name": "a", "onnx": "models/a.onnx", "onnx_sha256": digest}]}
    pkg = make_package(tmp_path / "swap", config)
    assert verify_package(pkg) == 2
    (pkg / "models" / "a.onnx").write_bytes(b"another model")  # swapped, and the manifest rewritten to match
    write_manifest(str(pkg), ["models/a.onnx", "deployment_config.yaml"])
    with pytest.raises(PackageError, match="not the model deployment_config.yaml was exported with"):
        verify_package(pkg)


def test_a_manifest_that_is_not_text_is_one_line(tmp_path):
    pkg = make_package(tmp_path)
    (pkg / MANIFEST).write_bytes(b"\xff" * 64 + b"  models/a.onnx\n")
    with pytest.raises(PackageError, match="not UTF-8") as err:
        verify_package(pkg)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("change,message", [
    (lambda c: c.pop("imgsz"), "imgsz: missing; a package states"),
    (lambda c: c.update(models=[{"name": "a"}]), "models.0.onnx: missing; a package runs every model"),
    (lambda c: c.update(thresholds={"shark": 0.5}), "thresholds: names unknown classes"),
    (lambda c: c.update(thresholds={"fish": 1.5}), r"thresholds.fish: must be a number in \[0, 1\]"),
    (lambda c: c.update(models=[]), "models: is empty"),
    (lambda c: c.update(fusion={"method": "vote"}), "fusion.method: 'vote' is not one of"),
    (lambda c: c.update(fusion={"weights": [1.0, 2.0, 3.0]}), "fusion.weights: 3 entries for 1 models"),
    (lambda c: c.update(calibration={"fish": {"method": "beta"}}), "calibration.fish: method 'beta' is not one of"),
    (lambda c: c.update(calibration={"fish": {"method": "platt", "a": 1.0}}),
     r"calibration.fish: method 'platt' needs \['a', 'b'\]; missing \['b'\]"),
    (lambda c: c.update(calibration={"fish": {"method": "isotonic", "x": [0, 1], "y": [0]}}),
     "calibration.fish: unusable isotonic parameters"),
])
def test_bad_deployment_config_is_explained(tmp_path, change, message):
    config = json.loads(json.dumps(CONFIG))
    change(config)
    with pytest.raises(PackageError, match=message):
        load_deployment_config(make_package(tmp_path, config))


def test_json_twin_is_read_without_pyyaml(tmp_path, monkeypatch):
    from marauder.export.package import write_config

    pkg = tmp_path / "pkg"
    pkg.mkdir()
    write_config(pkg, CONFIG)
    monkeypatch.setitem(sys.modules, "yaml", None)  # import yaml -> ImportError, as on a bare Jetson
    assert load_deployment_config(pkg).class_names == ["fish", "crab"]
    (pkg / "deployment_config.yaml").write_text((pkg / "deployment_config.yaml").read_text() + "# edited\n")
    with pytest.raises(PackageError, match="edited after export and PyYAML is not installed"):
        load_deployment_config(pkg)


def test_engine_for_another_gpu_says_rebuild():
    meta = {"gpu": "Orin (nvgpu)", "compute_capability": "8.7", "tensorrt": "8.6.2"}
    check_engine_meta(meta, dict(meta))  # same device: fine
    with pytest.raises(EngineMismatchError, match="built for GPU Orin.*this device has NVIDIA A100") as err:
        check_engine_meta(meta, dict(meta, gpu="NVIDIA A100"), "engines/a.engine")
    assert REBUILD_HINT in str(err.value)
    with pytest.raises(EngineMismatchError, match="TensorRT version 8.6.2"):
        check_engine_meta(meta, dict(meta, tensorrt="10.3.0"))


def test_tensorrt_missing_is_a_clear_error(tmp_path):
    pytest.importorskip("numpy")
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    with pytest.raises(BackendUnavailable, match="TensorRT is not installed"):
        TensorRTBackend(tmp_path / "a.engine")
    from marauder.errors import MarauderError
    from marauder.infer.onnx_predictor import TensorRTPredictor

    (tmp_path / "a.engine").write_bytes(b"x")
    with pytest.raises(MarauderError, match="TensorRT is not installed"):
        TensorRTPredictor(tmp_path / "a.engine")


ALLOWED = {"numpy", "cv2", "onnxruntime", "tensorrt", "yaml", "cuda", "__future__", "ast", "hashlib", "json",
           "logging", "os", "re", "shutil", "subprocess", "sys", "threading", "time", "typing", "argparse",
           "math", "collections", "dataclasses", "array", "copy"}


@pytest.mark.parametrize("path", sorted(RUNTIME.glob("*.py")), ids=lambda p: p.name)
def test_runtime_is_python38_and_imports_only_its_allowlist(path):
    """The Jetson runs Python 3.8+ with numpy/OpenCV/onnxruntime/TensorRT: nothing else may be imported."""
    source = path.read_text()
    tree = ast.parse(source, feature_version=(3, 8))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots = [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: inside the runtime itself
                continue
            roots = [node.module.split(".")[0]]
        else:
            continue
        assert set(roots) <= ALLOWED, f"{path.name}:{node.lineno} imports {roots}"
    if path.name != "__init__.py":
        assert "from __future__ import annotations" in source  # PEP 604/585 hints stay unevaluated on 3.8


def test_int8_with_trtexec_is_refused_not_built_as_fp16(tmp_path):
    from marauder.runtime.build_engines import build_package_engines
    from marauder.runtime.errors import EdgeError

    pkg = make_package(tmp_path)
    with pytest.raises(EdgeError, match="INT8 engines need the TensorRT Python API"):
        build_package_engines(str(pkg), load_deployment_config(pkg), int8=True, use_trtexec=True)
    assert not (pkg / "engines").exists()  # refused before anything was written
