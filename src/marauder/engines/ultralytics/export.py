"""PyTorch checkpoint -> ONNX through Ultralytics' exporter (the graph, metadata and simplifier it uses).

Ultralytics writes the ONNX file beside the weights it loaded, so we export from a symlink in a
scratch folder and move the result to where the caller wants it (never touching the checkpoint's
own folder).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from .models import class_names_of, load_yolo

if TYPE_CHECKING:
    import numpy as np


def export_onnx(weights: str | Path, output: str | Path, *, imgsz: int, opset: int = 17,
                dynamic: bool = False, simplify: bool = True, batch: int = 1, half: bool = False,
                device: str = "cpu") -> dict:
    """Export `weights` to `output` (.onnx). Returns {"path", "class_names", "architecture"}."""
    weights, output = Path(weights).resolve(), Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="marauder-export-") as scratch:
        link = Path(scratch) / f"{output.stem}.pt"
        try:
            os.symlink(weights, link)
        except OSError:  # filesystems without symlinks
            shutil.copy2(weights, link)
        model = load_yolo(link)
        names = class_names_of(model)
        extra = {"half": True} if half else {}  # FP16 ONNX only on request ('half' is deprecated upstream)
        produced = model.export(format="onnx", imgsz=imgsz, opset=opset, dynamic=dynamic, simplify=simplify,
                                batch=batch, device=device, verbose=False, **extra)
        tmp = output.with_name(f".{output.name}.tmp")
        shutil.move(str(produced), tmp)
        os.replace(tmp, output)
    architecture = str(getattr(model.model, "yaml", {}).get("yaml_file", "")) if hasattr(model, "model") else ""
    return {"path": output, "class_names": names, "architecture": Path(architecture).stem}


def torch_raw_output(weights: str | Path, blob) -> np.ndarray:
    """The PyTorch model's raw head output (B, 4 + nc, anchors) for a preprocessed blob (N, 3, H, W).

    The same tensor the ONNX graph produces, so an export can be checked anchor by anchor.
    """
    import numpy as np
    import torch

    model = load_yolo(weights).model.float().eval()
    with torch.no_grad():
        out = model(torch.from_numpy(np.ascontiguousarray(blob, dtype=np.float32)))
    out = out[0] if isinstance(out, list | tuple) else out
    return out.cpu().numpy()
