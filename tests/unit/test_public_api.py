"""The public API a notebook uses: `import marauder` is light and names what the docs promise."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import marauder
from marauder.errors import MarauderError


def test_import_marauder_loads_no_torch_and_has_a_version():
    code = "import sys, marauder; print(marauder.__version__); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == marauder.__version__ and out[0][0].isdigit() and out[1] == "False"


def test_public_names_are_the_real_objects():
    from marauder.infer.predictor import load_predictor
    from marauder.types import Detections, GroundTruth

    assert set(marauder.__all__) == {"Detections", "GroundTruth", "__version__", "load_predictor"}
    assert marauder.load_predictor is load_predictor and marauder.Detections is Detections
    assert marauder.GroundTruth is GroundTruth
    d = marauder.Detections(np.array([[1, 2, 3, 4]]), [0.5], [0], (10, 10))
    assert len(d) == 1
    with pytest.raises(MarauderError, match="model file not found"):
        marauder.load_predictor("no/such/model.pt")
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        marauder.nope  # noqa: B018
