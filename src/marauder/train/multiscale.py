"""Stage 6: multi-scale fine-tuning of trained detectors, with small-object AP before and after.

Each model (by default every checkpoints/ensemble/<variant>/best.pt) is fine-tuned with every
batch resized to a resolution drawn from `multiscale_training.resolutions`, and written beside the
original as <name>_multiscale/{best,last}.pt. Resumable like the ensemble: finished models are
skipped, an interrupted one continues from its last.pt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..config.sections.general import GeneralConfig
from ..config.sections.stages import MultiscaleTrainingConfig
from ..errors import MarauderError, MissingInputError
from ..fsio import atomic_write_json, sha256_file
from ..log import get_logger
from ..workspace import Workspace
from .ensemble import TrainedModel, read_state, train_resumable

log = get_logger("train.multiscale")
SUFFIX = "_multiscale"
COMPARE_KEYS = ("mAP50-95", "mAP50", "AP_small", "AP_medium", "AP_large")


@dataclass
class MultiscaleResult:
    models: list[TrainedModel]
    sources: list[Path]
    comparison: list[dict] = field(default_factory=list)


def multiscale_target(source: Path) -> tuple[str, Path]:
    """checkpoints/ensemble/balanced/best.pt -> ('balanced', checkpoints/ensemble/balanced_multiscale/);
    runs/x/weights/best.pt -> ('x', runs/x_multiscale/); models/fish.pt -> ('fish', models/fish_multiscale/)."""
    source = Path(source)
    if source.stem in ("best", "last"):
        folder = source.parent
        if folder.name == "weights":  # an Ultralytics run: runs/<name>/weights/best.pt
            folder = folder.parent
        return folder.name, folder.parent / f"{folder.name}{SUFFIX}"
    return source.stem, source.parent / f"{source.stem}{SUFFIX}"


def discover_models(workspace: Workspace) -> list[Path]:
    """Every checkpoints/ensemble/<variant>/best.pt that is not itself a multi-scale output."""
    root = workspace.stage_checkpoints("train-ensemble")
    return sorted(p for p in root.glob("*/best.pt") if not p.parent.name.endswith(SUFFIX))


def _source_augmentation(source: Path) -> dict:
    """The augmentation the source model was trained with (from its training.json), so the
    fine-tune changes the scale schedule and nothing else."""
    spec = read_state(source.parent).get("spec") or {}
    aug = spec.get("augmentation") or {}
    return {k: float(v) for k, v in aug.items() if isinstance(v, int | float)}


def run_multiscale(cfg: MultiscaleTrainingConfig, general: GeneralConfig, workspace: Workspace, *,
                   models: list[str | Path] | None = None, evaluate: bool = True,
                   output_dir: Path | None = None) -> MultiscaleResult:
    data_yaml = workspace.path(cfg.data)
    if not data_yaml.is_file():
        raise MissingInputError(data_yaml, "marauder organize")
    chosen = models or cfg.models or []
    sources = [workspace.path(m) for m in chosen] if chosen else discover_models(workspace)
    if not sources:
        raise MissingInputError(workspace.ensemble_dir("<variant>") / "best.pt",
                                "marauder train-ensemble")
    for source in sources:
        if not source.is_file():
            raise MarauderError("model to fine-tune not found", file=str(source))
        if source.suffix != ".pt":
            raise MarauderError("multi-scale training fine-tunes PyTorch checkpoints (.pt)", file=str(source))
    names = [multiscale_target(s)[0] for s in sources]
    if len(set(names)) != len(names):
        raise MarauderError(f"two models would write the same <name>{SUFFIX} folder: {names}")

    resolutions = sorted(set(cfg.resolutions))
    trained = []
    for source in sources:
        name, out_dir = multiscale_target(source)
        augmentation = _source_augmentation(source)
        overrides = {**cfg.train_args, **augmentation, "scale": cfg.scale_variance}
        spec = {"stage": "multiscale", "source": str(source), "source_sha256": sha256_file(source)[:16],
                "data": str(data_yaml), "epochs": cfg.epochs,
                "resolutions": resolutions, "scale_variance": cfg.scale_variance, "batch": cfg.batch_size,
                "augmentation": dict(sorted(overrides.items())), "seed": general.seed}
        train_kwargs = dict(
            model=source, data_yaml=data_yaml, run_dir=workspace.runs_dir / "multiscale" / name,
            epochs=cfg.epochs, imgsz=max(resolutions),  # load at the largest size, resize batches down
            batch=cfg.batch_size, device=None if general.device == "auto" else general.device,
            workers=general.num_workers, seed=general.seed, amp=general.mixed_precision, overrides=overrides,
            deterministic=general.deterministic,
        )
        log.info("%s: multi-scale fine-tune of %s at %s px", name, source, resolutions)
        trained.append(train_resumable(f"{name}{SUFFIX}", out_dir, spec, train_kwargs, resolutions=resolutions))

    result = MultiscaleResult(trained, sources)
    if evaluate:
        result.comparison = compare_before_after(result, data_yaml, split=cfg.eval_split, imgsz=general.imgsz,
                                                 device=None if general.device == "auto" else general.device)
        if output_dir is not None:
            atomic_write_json(Path(output_dir) / "multiscale_comparison.json",
                              {"split": cfg.eval_split, "imgsz": general.imgsz, "rows": result.comparison})
    return result


def compare_before_after(result: MultiscaleResult, data_yaml: Path, *, split: str, imgsz: int,
                         device=None, batch: int = 16) -> list[dict]:
    """mAP and COCO size-bucket APs of each source model and its multi-scale version, same split and size."""
    from ..evaluate.runner import evaluate_model
    from ..infer.predictor import load_predictor

    rows = []
    for source, model in zip(result.sources, result.models):
        entry = {"model": model.name.removesuffix(SUFFIX), "split": split, "imgsz": imgsz}
        for label, path in (("before", source), ("after", model.best)):
            predictor = load_predictor(path, imgsz=imgsz, conf=0.001, device=device, batch=batch)
            summary = evaluate_model(predictor, data_yaml, split=split, batch=batch, bootstrap=0,
                                     worst_examples=0).summary
            entry[label] = {k: summary.get(k) for k in COMPARE_KEYS}
        before, after = entry["before"]["AP_small"], entry["after"]["AP_small"]
        entry["AP_small_delta"] = None if before is None or after is None else after - before
        rows.append(entry)
    return rows


def format_comparison(rows: list[dict]) -> str:
    header = ["model", *(f"{k} before->after" for k in ("mAP50-95", "AP_small", "AP_medium"))]
    lines = [header]

    def fmt(v):
        return "-" if v is None else f"{v:.4f}"

    for r in rows:
        lines.append([r["model"], *(f"{fmt(r['before'][k])} -> {fmt(r['after'][k])}"
                                    for k in ("mAP50-95", "AP_small", "AP_medium"))])
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    text = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"(AP_small: COCO boxes under 32x32 px; '-' = no small objects in the {r['split']} split)"
             for r in rows[:1]]
    return "\n".join(text + notes)
