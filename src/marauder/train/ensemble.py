"""Stage 5a: train the ensemble's variants (high_recall, balanced, high_precision, or any configured).

Each variant is one Ultralytics training run with its own augmentation and confidence threshold,
written to checkpoints/ensemble/<variant>/{best,last}.pt. Before any training every variant's
architecture is checked against the deployment budget. Runs are resumable: a rerun skips finished
variants and continues an interrupted one from its last.pt (mirrored there after every epoch).
"""

from __future__ import annotations

import functools
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..config.sections.general import GeneralConfig
from ..config.sections.stages import EnsembleConfig, EnsembleVariant
from ..errors import MarauderError, MissingInputError
from ..fsio import atomic_write_json, sha256_file
from ..log import get_logger
from ..workspace import Workspace

log = get_logger("train.ensemble")
STATE_FILE = "training.json"  # beside best.pt/last.pt: what the run was, and whether it finished


@dataclass
class TrainedModel:
    name: str
    best: Path
    last: Path
    status: str  # "trained", "resumed", "skipped" (finished earlier)
    seconds: float = 0.0
    metrics: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)


@dataclass
class EnsembleResult:
    variants: list[TrainedModel]
    budget: dict[str, dict]
    data_yaml: Path

    @property
    def weights(self) -> list[Path]:
        return [v.best for v in self.variants]


# -- shared with multiscale: resumable training into a checkpoint folder ------------------------

def read_state(out_dir: Path) -> dict:
    path = out_dir / STATE_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return {}  # a state file we cannot read is treated as absent: the run starts afresh


def is_finished(out_dir: Path, spec: dict) -> bool:
    state = read_state(out_dir)
    return state.get("status") == "finished" and state.get("spec") == spec and (out_dir / "best.pt").is_file()


def train_resumable(name: str, out_dir: Path, spec: dict, train_kwargs: dict, *,
                    resume_from: Path | None = None, resolutions: list[int] | None = None) -> TrainedModel:
    """Train into `out_dir` (best.pt, last.pt, training.json), continuing an interrupted run.

    `spec` is everything that defines the run (architecture, data, epochs, hyperparameters): a
    finished run with the same spec is skipped; an interrupted one with the same spec resumes from
    out_dir/last.pt; a different spec starts afresh. `resume_from` forces resuming that checkpoint.
    """
    from ..engines.ultralytics.multiscale import checkpoint_progress, make_trainer
    from ..engines.ultralytics.train import copy_checkpoints, train_detector

    out_dir.mkdir(parents=True, exist_ok=True)
    best, last = out_dir / "best.pt", out_dir / "last.pt"
    if resume_from is None and is_finished(out_dir, spec):
        log.info("%s: finished earlier, skipping (%s)", name, best)
        return TrainedModel(name, best, last, "skipped", metrics=read_state(out_dir).get("metrics", {}))

    state = read_state(out_dir)
    resume = None
    if resume_from is not None:
        resume = Path(resume_from)
    elif last.is_file() and state.get("spec") == spec:
        resume = last
    elif last.is_file() or best.is_file():
        log.warning("%s: the checkpoints in %s come from a different configuration; starting afresh", name,
                    out_dir)
        for stale in (best, last):
            stale.unlink(missing_ok=True)

    if resume is not None:
        try:
            progress = checkpoint_progress(resume)
        except Exception as exc:  # a truncated or foreign file: say so, never crash on it
            if resume_from is not None:
                raise MarauderError(f"--resume: cannot read checkpoint ({exc})", file=str(resume)) from exc
            log.warning("%s: cannot read %s (%s); starting afresh", name, resume, exc)
            last.unlink(missing_ok=True)
            resume, progress = None, None
    if resume is not None:
        if progress["finished"] or progress["epoch"] >= progress["epochs"]:
            log.info("%s: %s already holds a finished run (%d/%d epochs)", name, resume, progress["epoch"],
                     progress["epochs"])
            if resume.resolve() != last.resolve():
                shutil.copy2(resume, last)
            if not best.is_file():
                shutil.copy2(resume, best)
            _write_state(out_dir, "finished", spec, {})
            return TrainedModel(name, best, last, "skipped")
        log.info("%s: resuming from %s (epoch %d of %d)", name, resume, progress["epoch"], progress["epochs"])

    _write_state(out_dir, "training", spec, {})
    trainer = make_trainer(resolutions=resolutions, mirror_dir=out_dir)
    started = time.perf_counter()
    result = train_detector(**train_kwargs, resume=resume, trainer=trainer)
    seconds = time.perf_counter() - started
    copy_checkpoints(result, out_dir)
    if not best.is_file():
        raise MarauderError(f"{name}: training finished without writing {best}")
    metrics = {k: float(v) for k, v in (result.metrics or {}).items() if isinstance(v, int | float)}
    _write_state(out_dir, "finished", spec, metrics, seconds=round(seconds, 1), run_dir=str(result.run_dir))
    log.info("%s: done in %.0f s -> %s", name, seconds, best)
    return TrainedModel(name, best, last, "resumed" if resume else "trained", seconds, metrics,
                        {"run_dir": result.run_dir})


def _write_state(out_dir: Path, status: str, spec: dict, metrics: dict, **extra) -> None:
    atomic_write_json(out_dir / STATE_FILE, {"status": status, "spec": spec, "metrics": metrics,
                                             "updated": time.strftime("%Y-%m-%dT%H:%M:%S"), **extra})


# -- the ensemble stage --------------------------------------------------------------------------

INIT_REPORT = "init.json"  # beside best.pt: where the variant's first weights came from, how much fit


def chain_weights(cfg: EnsembleConfig, workspace: Workspace) -> Path | None:
    """The previous stage's model: ensemble.base_model, else the baseline; None when neither exists."""
    for candidate in (workspace.path(cfg.base_model), workspace.baseline_best):
        if candidate.is_file():
            return candidate
    return None


@dataclass
class VariantStart:
    """What a variant trains from: a checkpoint it continues (the chain, or init_from), or a fresh start."""

    model: Path  # the .pt Ultralytics trains from
    continues: bool  # True: the previous stage's weights of the same architecture
    arch: str
    report: dict


def plan_variant_start(cfg: EnsembleConfig, name: str, variant: EnsembleVariant, general: GeneralConfig,
                       workspace: Workspace, names: list[str]) -> VariantStart:
    """The chain when the variant has no model_size of its own (or the same architecture as the chain);
    otherwise `pretrained` into its own architecture, saved under runs/ensemble/<name>_init.pt."""
    from ..engines.ultralytics.backbone import arch_signature, build_detection_model, save_init_checkpoint
    from ..engines.ultralytics.pretrained import (
        check_transfer,
        detector_backbone_prefixes,
        initial_detector,
        resolve_start,
        transfer_into,
    )
    key = f"ensemble.variants.{name}"
    if variant.init_from:
        source = workspace.path(variant.init_from)
        if not source.is_file():
            raise MarauderError(f"{key}.init_from: {source} not found")
    else:
        source = chain_weights(cfg, workspace)
    source_model = _checkpoint_model(str(source), source.stat().st_mtime_ns) if source is not None else None
    own = build_detection_model(variant.model_size, len(names)) if variant.model_size else None
    if source_model is not None and (own is None or arch_signature(own) == arch_signature(source_model)):
        target = own or build_detection_model(source_model.yaml, len(names))
        transfer = transfer_into(target, source_model.state_dict(), str(source),
                                 backbone_prefixes=detector_backbone_prefixes(target))
        check_transfer(transfer, target_arch=variant.model_size or "the chain's architecture",
                       source_arch=str(source), allow_partial=general.allow_partial_init, key=key)
        return VariantStart(source, True, variant.model_size or "chain", {
            "continues": str(source), "source_sha256": sha256_file(source)[:16], "transfers": [transfer.to_json()]})
    if variant.model_size is None:
        raise MissingInputError(workspace.path(cfg.base_model), "marauder train-critical")
    start = resolve_start(variant.pretrained, variant.model_size, None, workspace.path(general.weights_dir),
                          key=f"{key}.pretrained", workspace_path=workspace.path)
    log.info("%s: own architecture %s (model_size set), so it starts from %s, not from the chain's %s", name,
             variant.model_size, start.describe(), source or "model")
    import torch

    torch.manual_seed(general.seed)  # the same random neck every run, so a finished run is recognised
    model, transfer = initial_detector(start, len(names), allow_partial=general.allow_partial_init,
                                       key=f"{key}.pretrained")
    path = save_init_checkpoint(model, workspace.runs_dir / "ensemble" / f"{name}_init.pt", names)
    return VariantStart(path, False, start.arch, {"start": start.describe(), "transfers": [transfer.to_json()]})


@functools.lru_cache(maxsize=4)
def _checkpoint_model(path: str, mtime_ns: int):
    """The model inside a checkpoint, read once however many variants continue from it (mtime: a file
    rewritten in between is read again)."""
    from ..engines.ultralytics.train import read_checkpoint

    ckpt = read_checkpoint(path)
    return (ckpt.get("ema") or ckpt.get("model")).float()


def variant_spec(cfg: EnsembleConfig, name: str, variant: EnsembleVariant, general: GeneralConfig,
                 data_yaml: Path, init: Path | None) -> dict:
    return {
        "stage": "ensemble", "variant": name, "model": variant.model_size or "chain",
        "init": str(init) if init else None,
        # the content, not just the path: a retrained base model at the same path must retrain the variant
        "init_sha256": sha256_file(init)[:16] if init else None,
        "data": str(data_yaml), "epochs": variant.epochs or cfg.epochs, "imgsz": cfg.imgsz or general.imgsz,
        "batch": cfg.batch_size, "augmentation": dict(sorted(variant.augmentation.items())),
        "train_args": dict(sorted(cfg.train_args.items())),
        "seed": general.seed + list(cfg.variants).index(name),  # members differ in seed as well
    }


def variant_for_checkpoint(cfg: EnsembleConfig, path: Path) -> str:
    """Which variant a --resume path belongs to: the nearest parent folder named like a variant."""
    for parent in Path(path).resolve().parents:
        if parent.name in cfg.variants:
            return parent.name
    raise MarauderError(f"--resume: cannot tell which variant {path} belongs to; expected a path under "
                        f"checkpoints/ensemble/<variant>/ with variant one of {list(cfg.variants)}")


def check_budgets(cfg: EnsembleConfig, names: list[str], nc: int,
                  models: dict[str, str | Path] | None = None) -> dict[str, dict]:
    """Each variant's architecture (its model_size, or the checkpoint it continues) against the budget."""
    from ..engines.ultralytics.budget import check_budget

    costs = {}
    measured: dict[str, object] = {}  # variants continuing one checkpoint are measured once
    b = cfg.budget
    for name in names:
        spec = str((models or {}).get(name) or cfg.variants[name].model_size)
        if spec not in measured:
            measured[spec] = check_budget(spec, max_params_m=b.max_params_m, max_gflops=b.max_gflops,
                                          imgsz=b.imgsz, nc=nc, label=f"ensemble.variants.{name}")
        cost = measured[spec]
        log.info("budget ok: %s", cost.describe().replace(cost.model, f"{name} ({cost.model})", 1))
        costs[name] = {"model": cost.model, "params_m": round(cost.params_m, 3), "gflops": round(cost.gflops, 3),
                       "imgsz": cost.imgsz}
    return costs


def run_ensemble(cfg: EnsembleConfig, general: GeneralConfig, workspace: Workspace, *,
                 resume: str | Path | None = None, only: list[str] | None = None) -> EnsembleResult:
    data_yaml = workspace.path(cfg.data)
    if not data_yaml.is_file():
        raise MissingInputError(data_yaml, "marauder organize")
    names = list(cfg.variants)
    if only:
        unknown = [n for n in only if n not in cfg.variants]
        if unknown:
            raise MarauderError(f"--variants: unknown {unknown}; the config defines {names}")
        names = [n for n in names if n in only]
    resume_variant = None
    if resume is not None:
        resume = Path(resume)
        if not resume.is_file():
            raise MarauderError("--resume: checkpoint not found", file=str(resume))
        resume_variant = variant_for_checkpoint(cfg, resume)
        names = [resume_variant] + [n for n in names if n != resume_variant]

    from ..data.dataset import load_dataset_yaml

    dataset = load_dataset_yaml(data_yaml)
    # every start and every budget before the first epoch is spent
    starts = {name: plan_variant_start(cfg, name, cfg.variants[name], general, workspace, dataset.names)
              for name in names}
    # a variant that continues the chain is measured as the checkpoint it continues
    budget = check_budgets(cfg, names, dataset.nc, {n: s.model if s.continues else s.arch for n, s in starts.items()})

    trained = []
    for name in names:
        variant = cfg.variants[name]
        start = starts[name]
        spec = variant_spec(cfg, name, variant, general, data_yaml, start.model)
        overrides = {**cfg.train_args, **variant.augmentation}
        atomic_write_json(workspace.ensemble_dir(name) / INIT_REPORT, start.report)
        train_kwargs = dict(
            deterministic=general.deterministic,
            model=start.model, data_yaml=data_yaml, run_dir=workspace.runs_dir / "ensemble" / name,
            epochs=spec["epochs"], imgsz=spec["imgsz"], batch=cfg.batch_size,
            device=None if general.device == "auto" else general.device, workers=general.num_workers,
            seed=spec["seed"], amp=general.mixed_precision, overrides=overrides,
        )
        result = train_resumable(name, workspace.ensemble_dir(name), spec, train_kwargs,
                                 resume_from=resume if name == resume_variant else None)
        result.extra["confidence_threshold"] = variant.confidence_threshold
        trained.append(result)
    return EnsembleResult(trained, budget, data_yaml)


# -- --validate: every member and the fused ensemble on one split, one table --------------------

class MemoPredictor:
    """Remembers a predictor's detections per image content, so the members run once per image
    however many ensemble settings are evaluated on top of them."""

    def __init__(self, predictor, name: str = "model"):
        self.predictor = predictor
        self.name = name
        self.class_names = list(predictor.class_names)
        self._memo: dict[str, object] = {}

    @staticmethod
    def _key(image) -> str:
        import hashlib

        return f"{image.shape}:{hashlib.blake2b(image.tobytes(), digest_size=16).hexdigest()}"

    def predict(self, images: list) -> list:
        keys = [self._key(im) for im in images]
        todo = [i for i, k in enumerate(keys) if k not in self._memo]
        if todo:
            for i, det in zip(todo, self.predictor.predict([images[i] for i in todo])):
                self._memo[keys[i]] = det
        return [self._memo[k] for k in keys]


SUMMARY_KEYS = ("mAP50-95", "mAP50", "AP_small", "AP_medium", "AR100")


def validate_ensemble(result: EnsembleResult, cfg: EnsembleConfig, *, split: str = "val", imgsz: int,
                      device=None, batch: int = 16, output_dir: Path | None = None) -> dict:
    """Evaluate each member and the fused ensemble the same way (conf 0.001, the usual mAP protocol,
    which is also how the calibrated pipeline fuses: members at tta_calibration.raw_confidence), plus
    fusion after each variant's confidence_threshold (what a package exported without `calibrate`
    runs), so the cost of those thresholds in mAP shows.

    Returns {"rows": [...], "best_member": name, "verdict": text}; the ensemble is compared with
    its best member on mAP50-95 under the same protocol, whichever way that goes.
    """
    from ..evaluate.runner import evaluate_model
    from ..infer.ensemble_predictor import EnsemblePredictor
    from ..infer.predictor import load_predictor

    names = [v.name for v in result.variants]
    thresholds = [cfg.variants[n].confidence_threshold for n in names]
    members = [MemoPredictor(load_predictor(v.best, imgsz=imgsz, conf=0.001, device=device, batch=batch), v.name)
               for v in result.variants]
    rows = []

    def add(label: str, predictor, kind: str, threshold) -> None:
        report = evaluate_model(predictor, result.data_yaml, split=split, batch=batch, bootstrap=0,
                                worst_examples=0)
        rows.append({"model": label, "kind": kind, "threshold": threshold,
                     **{k: report.summary.get(k) for k in SUMMARY_KEYS}})

    for name, member in zip(names, members):
        add(name, member, "member", None)
    fusion = cfg.fusion.model_dump()
    # the fusion weights follow the config's variant order; keep those of the members present
    if fusion.get("weights") is not None:
        order = list(cfg.variants)
        fusion["weights"] = [fusion["weights"][order.index(n)] for n in names]
    method = cfg.fusion.method
    fused = EnsemblePredictor(members, None, fusion, names)
    fused.name = f"ensemble ({method})"
    add(fused.name, fused, "ensemble", None)
    thresholded = EnsemblePredictor(members, thresholds, fusion, names)
    thresholded.name = f"ensemble ({method}, variant thresholds)"
    add(thresholded.name, thresholded, "ensemble", "per member")

    scored = [r for r in rows if r["kind"] == "member" and r["mAP50-95"] is not None]
    best = max(scored, key=lambda r: r["mAP50-95"]) if scored else None
    ens = rows[len(names)]
    verdict = "no member produced a mAP (empty split?)"
    if best is not None and ens["mAP50-95"] is not None:
        delta = ens["mAP50-95"] - best["mAP50-95"]
        word = "better than" if delta > 0 else ("equal to" if delta == 0 else "worse than")
        verdict = (f"{ens['model']} mAP50-95 {ens['mAP50-95']:.4f} vs best member {best['model']} "
                   f"{best['mAP50-95']:.4f}: {delta:+.4f} ({word} its best member)")
    out = {"split": split, "imgsz": imgsz, "data": str(result.data_yaml), "fusion": cfg.fusion.model_dump(),
           "rows": rows, "best_member": best["model"] if best else None, "verdict": verdict}
    if output_dir is not None:
        atomic_write_json(Path(output_dir) / "validation.json", out)
    return out


def format_table(validation: dict) -> str:
    """The validation rows as a fixed-width text table (also fine in Markdown code blocks)."""
    header = ["model", "conf", *SUMMARY_KEYS]
    lines = [header]
    for r in validation["rows"]:
        conf = r["threshold"] if isinstance(r["threshold"], str) else "0.001"
        lines.append([r["model"], conf, *("-" if r[k] is None else f"{r[k]:.4f}" for k in SUMMARY_KEYS)])
    widths = [max(len(str(row[i])) for row in lines) for i in range(len(header))]
    text = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(text + ["", validation["verdict"]])
