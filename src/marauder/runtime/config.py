"""Read deployment_config.yaml: PyYAML when installed, else its JSON twin (same content).

The export writes both files. The JSON twin records the sha256 of the YAML it mirrors, so a YAML
edited on the device without PyYAML to read it is refused instead of silently ignored. The document is
a `PipelineSpec` (marauder.runtime.spec), checked as pipeline_config.yaml is, plus what a package needs:
its input size stated and an ONNX file for every model.
"""

from __future__ import annotations

import json
import os

from .errors import PackageError
from .package import sha256_of
from .spec import PipelineSpec, SpecError, parse_spec

CONFIG_NAME = "deployment_config.yaml"
JSON_TWIN = "deployment_config.json"


def load_deployment_config(package_dir) -> PipelineSpec:
    package_dir = str(package_dir)
    path = os.path.join(package_dir, CONFIG_NAME)
    if not os.path.isfile(path):
        raise PackageError(f"{path}: not found; is {package_dir} a deployment package?")
    try:
        import yaml
    except ImportError:
        yaml = None
    if yaml is not None:
        with open(path, encoding="utf-8") as fh:
            try:
                cfg = yaml.safe_load(fh)
            except yaml.YAMLError as exc:
                raise PackageError(f"{path}: not valid YAML: {exc}") from None
    else:
        twin = os.path.join(package_dir, JSON_TWIN)
        if not os.path.isfile(twin):
            raise PackageError(f"{path}: PyYAML is not installed and {twin} is missing: pip install pyyaml")
        with open(twin, encoding="utf-8") as fh:
            cfg = json.load(fh)
        if cfg.pop("_yaml_sha256", None) != sha256_of(path):
            raise PackageError(f"{path}: was edited after export and PyYAML is not installed to read it: "
                               "pip install pyyaml")
    return validate(cfg, path)


def validate(cfg, path: str = CONFIG_NAME) -> PipelineSpec:
    found = []
    if isinstance(cfg, dict):
        found += [("imgsz", "missing; a package states its models' input size")] if "imgsz" not in cfg else []
        for i, model in enumerate(cfg.get("models") or []):
            if isinstance(model, dict) and not model.get("onnx"):
                found.append((f"models.{i}.onnx", "missing; a package runs every model from its ONNX file"))
    try:
        spec = parse_spec(cfg)
    except SpecError as exc:
        found += exc.problems
    if found:
        raise PackageError(f"{path}: " + "; ".join(f"{key}: {message}" if key else message for key, message in found))
    return spec
