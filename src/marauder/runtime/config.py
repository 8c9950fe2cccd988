"""Read deployment_config.yaml: PyYAML when installed, else its JSON twin (same content).

The export writes both files. The JSON twin records the sha256 of the YAML it mirrors, so a YAML
edited on the device without PyYAML to read it is refused instead of silently ignored.
"""

from __future__ import annotations

import json
import os

from .errors import PackageError
from .package import sha256_of
from .spec import problems

CONFIG_NAME = "deployment_config.yaml"
JSON_TWIN = "deployment_config.json"
REQUIRED = ("class_names", "imgsz", "models")
MODEL_REQUIRED = ("name", "onnx")


def load_deployment_config(package_dir) -> dict:
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


def validate(cfg, path: str = CONFIG_NAME) -> dict:
    if not isinstance(cfg, dict):
        raise PackageError(f"{path}: expected a mapping at the top level")
    for key in REQUIRED:
        if key not in cfg:
            raise PackageError(f"{path}: missing key '{key}'")
    if not cfg["models"]:
        raise PackageError(f"{path}: 'models' is empty")
    for i, model in enumerate(cfg["models"]):
        for key in MODEL_REQUIRED:
            if key not in model:
                raise PackageError(f"{path}: models[{i}] is missing key '{key}'")
    # the same checks as pipeline_config.yaml's, so a bad value stops the package at load time
    found = problems(cfg)
    if found:
        raise PackageError(f"{path}: " + "; ".join(f"{key}: {message}" for key, message in found))
    return cfg
