"""INT8 ONNX for the CPU/cloud path: onnxruntime static quantization (QDQ, per-channel weights).

Calibration feeds letterboxed images exactly as the runtime preprocesses them. The detection head's
final layers (box decoding and class scores) stay in float: quantizing them costs accuracy for
little speed. Measure the result with `marauder evaluate` before using it (bench/bench_runtime_latency.py
reports its latency and mAP cost).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from ..errors import MarauderError
from ..runtime.preprocess import letterbox, to_blob


def _head_nodes(model_path: Path) -> list[str]:
    """Nodes of the Detect head's decode stage, kept in float.

    The head is the module of the last Conv (`/model.<N>/...` in Ultralytics' export); its own
    convolution branches (`/cv...`) are quantized, everything else in it (DFL, box decoding, the
    sigmoid over class scores, the concats) is excluded. [] when the names do not follow that pattern.
    """
    import onnx

    graph = onnx.load(str(model_path)).graph
    names = [n.name for n in graph.node]
    head_prefix = None
    for n in graph.node:
        if n.op_type == "Conv" and n.name.count("/") >= 2:
            head_prefix = n.name.split("/")[1]
    if head_prefix is None:
        return []
    return [n for n in names if n.startswith(f"/{head_prefix}/") and "/cv" not in n]


def quantize_int8(model_fp32: str | Path, output: str | Path, calibration_images: list[np.ndarray],
                  imgsz: int) -> Path:
    """Write an INT8 (QDQ) copy of `model_fp32` calibrated on `calibration_images` (BGR arrays)."""
    try:
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as exc:
        raise MarauderError(f"onnxruntime quantization is unavailable: {exc}") from None
    if not calibration_images:
        raise MarauderError("INT8 quantization needs calibration images")
    blobs = [to_blob([letterbox(img, (imgsz, imgsz))[0]]) for img in calibration_images]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(blobs)

        def get_next(self):
            blob = next(self.items, None)
            return None if blob is None else {"images": blob}

    output = Path(output)
    with tempfile.TemporaryDirectory(prefix="marauder-quant-") as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(model_fp32), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(output), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_exclude=_head_nodes(prepared))
    return output
