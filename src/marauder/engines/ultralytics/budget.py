"""What a detector costs on the edge device: parameters and GFLOPs per image at the deployment size.

Measured on the real architecture (built from its yaml, or loaded from a checkpoint) with the
dataset's class count, using Ultralytics' own FLOP counter (thop, stride-aware); torch's
FlopCounterMode is the fallback when thop is unavailable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ...errors import MarauderError
from .models import resolve_model_source

# Ultralytics families with n < s < m < l < x scales, e.g. yolov8m, yolo11s, yolov5lu
_SCALED = re.compile(r"^(?P<family>yolo(?:v\d+)?\d*)(?P<scale>[nsmlx])(?P<rest>u?)$")
SCALES = "nsmlx"


@dataclass(frozen=True)
class ModelCost:
    model: str
    params: int
    gflops: float
    imgsz: int

    @property
    def params_m(self) -> float:
        return self.params / 1e6

    def describe(self) -> str:
        return f"{self.model}: {self.params_m:.2f}M params, {self.gflops:.2f} GFLOPs at {self.imgsz}px"


class BudgetExceededError(MarauderError):
    """A model does not fit the deployment budget (parameters or GFLOPs)."""


def measure_model(spec: str | Path, imgsz: int, nc: int | None = None) -> ModelCost:
    """Parameters and GFLOPs of one image at `imgsz` for a model name, yaml or .pt checkpoint.

    `nc` (the dataset's class count) sizes the detection head as training will; a checkpoint keeps
    its own head.
    """
    import torch

    source = resolve_model_source(str(spec))
    if "+" in str(spec):  # a YOLO neck on a foreign backbone (backbone.py)
        from .backbone import build_detection_model

        model = build_detection_model(str(spec), nc or 80)
    elif source.endswith(".pt"):
        if not Path(source).is_file():
            raise MarauderError("model checkpoint not found", file=source)
        from ultralytics.nn.tasks import load_checkpoint

        model, _ = load_checkpoint(source)
        model = model.float()
    else:
        from ultralytics.nn.tasks import DetectionModel, yaml_model_load

        try:
            arch = yaml_model_load(source)
        except FileNotFoundError as exc:
            raise MarauderError(f"unknown model '{spec}': no architecture yaml {source}") from exc
        if nc:
            arch["nc"] = nc  # size the head as training will (quietly, unlike DetectionModel(nc=...))
        model = DetectionModel(arch, verbose=False)
    model.eval()
    params = sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        gflops = _gflops(model, imgsz)
    return ModelCost(str(spec), int(params), float(gflops), int(imgsz))


def _gflops(model, imgsz: int) -> float:
    from ultralytics.utils.torch_utils import get_flops

    gflops = get_flops(model, imgsz)  # 0.0 when thop is missing or fails
    if gflops > 0:
        return gflops
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        model(torch.zeros(1, 3, imgsz, imgsz))
    return counter.get_total_flops() / 1e9


def smaller_models(spec: str) -> list[str]:
    """Same family, smaller scales, largest first: 'yolov8m' -> ['yolov8s', 'yolov8n'];
    'yolov8s+efficientnet_lite0' -> ['yolov8n+efficientnet_lite0']."""
    spec, plus, backbone = str(spec).partition("+")
    name = Path(spec).stem if spec.endswith((".yaml", ".yml")) else spec
    match = _SCALED.match(name)
    if not match:
        return []
    index = SCALES.index(match["scale"])
    return [f"{match['family']}{s}{match['rest']}{plus}{backbone}" for s in reversed(SCALES[:index])]


def check_budget(spec: str | Path, *, max_params_m: float, max_gflops: float, imgsz: int,
                 nc: int | None = None, label: str | None = None) -> ModelCost:
    """Measure `spec`; raise `BudgetExceededError` saying by how much and which smaller model fits.

    Returns the measured cost when it fits.
    """
    cost = measure_model(spec, imgsz, nc)
    over = []
    if cost.params_m > max_params_m:
        over.append(f"{cost.params_m:.2f}M params > {max_params_m:g}M by {cost.params_m - max_params_m:.2f}M "
                    f"(+{100 * (cost.params_m / max_params_m - 1):.0f}%)")
    if cost.gflops > max_gflops:
        over.append(f"{cost.gflops:.2f} GFLOPs > {max_gflops:g} by {cost.gflops - max_gflops:.2f} "
                    f"(+{100 * (cost.gflops / max_gflops - 1):.0f}%)")
    if not over:
        return cost
    suggestion = ""
    for candidate in smaller_models(str(spec)):
        try:
            smaller = measure_model(candidate, imgsz, nc)
        except Exception:  # an unknown sibling name is no suggestion, not an error
            continue
        if smaller.params_m <= max_params_m and smaller.gflops <= max_gflops:
            suggestion = (f"; use a smaller model_size, e.g. {candidate} ({smaller.params_m:.2f}M params, "
                          f"{smaller.gflops:.2f} GFLOPs)")
            break
    if not suggestion:
        suggestion = "; use a smaller model_size (or raise ensemble.budget if the device allows)"
    who = f"{label} ({spec})" if label else str(spec)
    raise BudgetExceededError(f"{who} is over the deployment budget at {imgsz}px: {'; '.join(over)}{suggestion}")
