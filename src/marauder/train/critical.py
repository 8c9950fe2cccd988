"""Stage 4: specialise the detector on critical species (oversampling, hard negative mining, recall gate).

Iteration i (1..N, N = hard_negative_mining.iterations, or 1 without mining):
  train from the previous iteration's best.pt (iteration 1: critical_species.base_model) on a derived
  dataset: the oversampled train list + every negative mined so far; val/test are the originals.
  Then, except after the last iteration, predict over the mining pool, write the new negatives
  (data/critical_species/iter<i>/negatives/) and export very confident unlabelled detections for
  review (outputs/critical_species/review_iter<i>.zip).
Every iteration is evaluated on val (mAP, recall per critical species at the operating threshold).
The last iteration's model becomes checkpoints/critical_species/best.pt; the recall gate checks it.
Resume: an iteration whose training finished with the same spec (init weights, training list, epochs...)
is skipped, an interrupted one resumes from its last.pt; mined negatives are reused when they were
mined with the same model.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from ..config.sections.general import GeneralConfig, LoggingConfig
from ..config.sections.stages import CriticalSpeciesConfig
from ..data.dataset import DatasetSpec, load_dataset_yaml
from ..errors import DataError, MissingInputError
from ..fsio import atomic_write_json, atomic_write_text, sha256_file
from ..log import get_logger
from ..workspace import Workspace
from . import mining
from .common import Tracker, write_jsonl
from .oversample import (
    critical_class_ids,
    oversampled_list,
    require_critical_in_train,
    scan_train_split,
    write_derived_dataset,
)

log = get_logger("train.critical")
STAGE = "critical_species"


@dataclass
class Plan:
    """Everything preflight learned: checked before anything is written or trained."""

    spec: DatasetSpec
    critical_ids: list[int]
    train_list: list[Path]
    species_images: dict[str, int]
    base: str  # weights path, or an architecture (model name / yaml) when training from scratch
    iterations: int
    epochs_per_iteration: int
    imgsz: int
    background_dirs: list[tuple[str, Path]]


@dataclass
class CriticalResult:
    best: Path
    iterations: list[dict]
    gate: dict
    report_json: Path
    report_md: Path
    plan: Plan = field(repr=False)

    @property
    def passed(self) -> bool:
        return bool(self.gate.get("passed"))


def base_model_source(cfg: CriticalSpeciesConfig, workspace: Workspace, names: list[str]) -> str:
    """Weights to start from (class names must equal the dataset's) or an architecture to build."""
    path = workspace.path(cfg.base_model)
    if path.is_file():
        from ..engines.ultralytics.models import class_names_of, load_yolo

        try:
            model_names = class_names_of(load_yolo(path))
        except Exception as exc:  # noqa: BLE001 - a corrupt or foreign file: say which
            raise DataError(f"critical_species.base_model: cannot load checkpoint ({exc})", file=str(path)) from None
        if model_names != list(names):
            raise DataError(f"critical_species.base_model has classes {model_names} but the dataset has {names}; "
                            "train the base model on this dataset (marauder train-baseline) or point base_model "
                            "at one that matches", file=str(path))
        return str(path)
    if path.suffix == ".pt":
        raise MissingInputError(path, "marauder train-baseline")
    return cfg.base_model  # a model name or .yaml: trained from scratch


def preflight(cfg: CriticalSpeciesConfig, general: GeneralConfig, workspace: Workspace, *,
              baseline_epochs: int) -> Plan:
    """Every check that can fail on user input, before a file is written."""
    spec = load_dataset_yaml(workspace.path(cfg.data))
    if not spec.has_split("train") or not spec.has_split("val"):
        raise DataError("critical species training needs a train and a val split", file=str(spec.yaml_path))
    ids = critical_class_ids(spec.names, cfg.species)
    images = scan_train_split(spec)
    counts = require_critical_in_train(images, spec.names, ids, spec)
    over = cfg.oversampling
    if over.enabled and over.method == "repeat":
        train_list = oversampled_list(images, ids, over.critical_species_ratio, general.seed)
    else:
        train_list = [im.image for im in images]
    hnm = cfg.hard_negative_mining
    iterations = hnm.iterations if hnm.enabled else 1
    total = cfg.epochs or baseline_epochs
    per_iteration = hnm.epochs_per_iteration if hnm.enabled and hnm.epochs_per_iteration else max(1, total // iterations)
    backgrounds = []
    for d in hnm.background_dirs:
        folder = workspace.path(d)
        if not folder.is_dir():
            raise DataError("critical_species.hard_negative_mining.background_dirs: folder not found", file=str(folder))
        backgrounds.append((d, folder))
    base = base_model_source(cfg, workspace, spec.names)
    return Plan(spec, ids, train_list, counts, base, iterations, per_iteration, cfg.imgsz or general.imgsz,
                backgrounds)


def _device(general: GeneralConfig):
    from .baseline import ultralytics_device

    return ultralytics_device(general.device)


def _digest(paths: list[Path]) -> str:
    return hashlib.sha256("".join(f"{p}\n" for p in paths).encode()).hexdigest()[:16]


GATE_BOOTSTRAP = 1000  # resamples of val images for each recall's 95% interval


def evaluate_iteration(weights: Path, plan: Plan, cfg: CriticalSpeciesConfig, device) -> dict:
    """mAP50, mAP50-95 and recall per critical species (with a 95% CI) on val at the operating threshold."""
    from ..evaluate.runner import evaluate_model

    report = evaluate_model(weights, plan.spec.yaml_path, split="val", imgsz=plan.imgsz,
                            critical_species=list(cfg.species), operating_conf=cfg.operating_confidence,
                            bootstrap=GATE_BOOTSTRAP, worst_examples=0, device=device, batch=cfg.batch_size)
    s = report.summary
    crit = {name: s["critical_recall"].get(name, {}) for name in cfg.species}
    return {"mAP50": s.get("mAP50"), "mAP50-95": s.get("mAP50-95"),
            "recall": {n: c.get("recall") for n, c in crit.items()},
            "recall_ci": {n: [c.get("ci_low"), c.get("ci_high")] for n, c in crit.items()},
            "support": {n: c.get("support", 0) for n, c in crit.items()}}


def check_gate(row: dict, min_recall: float, mode: str = "point") -> dict:
    """Every critical species must reach min_recall on val (its recall, or with mode 'lower_bound' the
    low end of its 95% interval); a species without val boxes cannot pass."""
    failures = []
    for name, r in row["recall"].items():
        low = (row.get("recall_ci", {}).get(name) or [None])[0]
        judged = r if mode == "point" else low
        if not row["support"].get(name):
            failures.append({"species": name, "recall": None, "why": "no boxes of it in the val split"})
        elif judged is None or judged < min_recall:
            what = "recall" if mode == "point" else "recall CI lower bound"
            failures.append({"species": name, "recall": r, "why": f"{what} {_f(judged)} < {min_recall}"})
    return {"passed": not failures, "min_recall": min_recall, "mode": mode, "failures": failures}


def _mine(i: int, best: Path, plan: Plan, cfg: CriticalSpeciesConfig, workspace: Workspace, known: set[str],
          device) -> dict:
    """Mining after iteration i (reused when done before with the same model). Returns its summary."""
    from ..infer.predictor import load_predictor

    hnm = cfg.hard_negative_mining
    neg_dir = negatives_dir(workspace, i)
    model_sha = sha256_file(best)
    settings = {"model_sha256": model_sha, "confidence": hnm.confidence, "review_confidence": hnm.review_confidence,
                "mode": hnm.mode, "classes": hnm.classes, "match_iou": hnm.match_iou,
                "max": hnm.max_negatives_per_iteration, "background_dirs": list(hnm.background_dirs),
                "known": _digest(sorted(Path(k) for k in known))}
    if (neg_dir / mining.MANIFEST).is_file():
        _, _, manifest = mining.read_negatives(neg_dir)
        if manifest.get("settings") == settings:
            log.info("iteration %d: negatives mined earlier with this model, reused (%s)", i, neg_dir)
            return manifest["summary"]
    pool = mining.mining_pool(plan.spec, plan.background_dirs)
    predictor = load_predictor(best, imgsz=plan.imgsz, conf=min(hnm.confidence, 0.01) or 0.001, device=device,
                               batch=cfg.batch_size)
    classes = set(plan.critical_ids) if hnm.classes == "critical" else None
    result = mining.mine_false_positives(predictor, pool, plan.spec.nc, classes, confidence=hnm.confidence,
                                         review_confidence=hnm.review_confidence, match_iou=hnm.match_iou,
                                         batch=cfg.batch_size)
    selected = mining.select_negatives(result, hnm.mode, known, hnm.max_negatives_per_iteration)
    review_pkg = None
    target = workspace.outputs(STAGE) / f"review_iter{i}.zip"
    target.unlink(missing_ok=True)  # a package from an earlier mining of this round is no longer current
    if result.for_review:
        package_id = f"critical-review-iter{i}-{model_sha[:8]}"
        mining.export_review(result.for_review, list(plan.spec.names), target, package_id=package_id,
                             metadata={"model": str(best), "iteration": i,
                                       "review_confidence": hnm.review_confidence})
        review_pkg = str(target)
    summary = {"scanned": result.scanned, "pool": len(pool), "unreadable": len(result.unreadable),
               "images_with_false_positives": len(result.with_negatives), "negatives_added": len(selected),
               "sent_for_review": len(result.for_review), "review_package": review_pkg}
    mining.write_negatives(selected, hnm.mode, neg_dir, crop_context=hnm.crop_context,
                           metadata={"iteration": i, "settings": settings, "summary": summary,
                                     "unreadable": result.unreadable[:200]})
    log.info("iteration %d mining: %d pool images scanned, %d unreadable skipped, %d negatives added, "
             "%d images sent for review", i, result.scanned, len(result.unreadable), len(selected),
             len(result.for_review))
    return summary


def train_overrides(cfg: CriticalSpeciesConfig) -> dict:
    """Ultralytics arguments of every iteration: train_args, plus the class-weighted loss (cls_pw,
    Ultralytics >= 8.4: inverse class frequency ** power) when oversampling.method is class_weights."""
    overrides = dict(cfg.train_args)
    over = cfg.oversampling
    if over.enabled and over.method == "class_weights":
        overrides["cls_pw"] = over.class_weight_power
    return overrides


def negatives_dir(workspace: Workspace, iteration: int) -> Path:
    return workspace.data_dir / STAGE / f"iter{iteration}" / "negatives"


def run_critical_species(cfg: CriticalSpeciesConfig, general: GeneralConfig, workspace: Workspace, *,
                         baseline_epochs: int = 100, logging_cfg: LoggingConfig | None = None,
                         plan: Plan | None = None) -> CriticalResult:
    from ..engines.ultralytics.train import TrainResult, copy_checkpoints
    from .ensemble import train_resumable

    plan = plan or preflight(cfg, general, workspace, baseline_epochs=baseline_epochs)
    device = _device(general)
    root = workspace.checkpoints(STAGE)
    names = [plan.spec.names[k] for k in plan.critical_ids]
    log.info("critical species %s: train images with them %s; training list %d entries (%d train images), "
             "%d iteration(s) x %d epochs from %s", names, plan.species_images, len(plan.train_list),
             len(set(plan.train_list)), plan.iterations, plan.epochs_per_iteration, plan.base)
    overrides = train_overrides(cfg)

    rows: list[dict] = []
    negatives: list[Path] = []
    known: set[str] = set()
    init = plan.base
    tracker = Tracker(None, logging_cfg, tb_dir=workspace.runs_dir / STAGE / "tensorboard", run_name=STAGE,
                      run_config={"critical_species": cfg.model_dump(mode="json")})
    try:
        for i in range(1, plan.iterations + 1):
            train_list = [*plan.train_list, *negatives]
            data_yaml = write_derived_dataset(plan.spec, workspace.data_dir / STAGE / f"iter{i}", train_list)
            init_id = sha256_file(init)[:16] if Path(init).is_file() else init
            spec = {"stage": STAGE, "iteration": i, "init": init_id, "train_list": _digest(train_list),
                    "epochs": plan.epochs_per_iteration, "imgsz": plan.imgsz, "batch": cfg.batch_size,
                    "seed": general.seed, "overrides": overrides}
            train_kwargs = dict(model=init, data_yaml=data_yaml, run_dir=workspace.runs_dir / STAGE / f"iter{i}",
                                epochs=plan.epochs_per_iteration, imgsz=plan.imgsz, batch=cfg.batch_size,
                                device=device, workers=general.num_workers, seed=general.seed,
                                deterministic=general.deterministic,
                                amp=general.mixed_precision, overrides=overrides)
            trained = train_resumable(f"iteration {i}", root / f"iter{i}", spec, train_kwargs)
            row = {"iteration": i, "status": trained.status, "epochs": plan.epochs_per_iteration,
                   "train_entries": len(train_list), "negatives_in_training": len(negatives),
                   "best": str(trained.best)}
            row.update(evaluate_iteration(trained.best, plan, cfg, device))
            if i < plan.iterations:
                summary = _mine(i, trained.best, plan, cfg, workspace, known, device)
                paths, keys, _ = mining.read_negatives(negatives_dir(workspace, i))
                negatives += paths
                known.update(keys)
                row.update({k: summary[k] for k in ("negatives_added", "sent_for_review", "unreadable",
                                                    "review_package", "scanned")})
            else:
                row.update({"negatives_added": 0, "sent_for_review": 0, "unreadable": 0, "review_package": None})
            rows.append(row)
            tracker.log(_scalars(row), step=i)
            init = str(trained.best)
    finally:
        tracker.close()

    final = rows[-1]
    best = workspace.critical_best
    final_dir = root / f"iter{plan.iterations}"
    copy_checkpoints(TrainResult(final_dir / "best.pt", final_dir / "last.pt", final_dir), root)
    gate = check_gate(final, cfg.min_recall, cfg.gate)
    write_jsonl(root / "metrics.jsonl", [{"step": r["iteration"], **_scalars(r)} for r in rows])
    out = workspace.outputs(STAGE)
    doc = {"species": names, "base_model": plan.base, "data": str(plan.spec.yaml_path),
           "oversampling": cfg.oversampling.model_dump(), "hard_negative_mining": cfg.hard_negative_mining.model_dump(),
           "operating_confidence": cfg.operating_confidence, "iterations": rows, "gate": gate, "best": str(best),
           "selection_note": "each iteration's best.pt was chosen on this same val split, so its val numbers lean "
                             "optimistic; the test split (marauder evaluate) is the unbiased check"}
    report_json = atomic_write_json(out / "report.json", doc)
    report_md = atomic_write_text(out / "report.md", format_report(doc) + "\n")
    return CriticalResult(best, rows, gate, report_json, report_md, plan)


def _scalars(row: dict) -> dict:
    out = {k: row[k] for k in ("mAP50", "mAP50-95", "negatives_added", "sent_for_review", "unreadable",
                               "train_entries") if isinstance(row.get(k), int | float)}
    out.update({f"recall/{k}": v for k, v in row["recall"].items() if v is not None})
    return out


def _f(v) -> str:
    return "-" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v))


def _ci(pair) -> str:
    return "-" if not pair or pair[0] is None else f"{_f(pair[0])}, {_f(pair[1])}"


def format_report(doc: dict) -> str:
    """The per-iteration table and the gate's verdict, as plain text (also fine inside Markdown)."""
    species = doc["species"]
    header = ["iter", "status", "epochs", "train list", "mAP50", "mAP50-95",
              *[f"R {s} [95% CI]" for s in species], "negatives added", "sent for review", "unreadable"]
    lines = [header]
    for r in doc["iterations"]:
        recalls = [f"{_f(r['recall'].get(s))} [{_ci(r.get('recall_ci', {}).get(s))}]" for s in species]
        lines.append([str(r["iteration"]), r["status"], str(r["epochs"]), str(r["train_entries"]), _f(r["mAP50"]),
                      _f(r["mAP50-95"]), *recalls, str(r["negatives_added"]),
                      str(r["sent_for_review"]), str(r["unreadable"])])
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    text = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    gate = doc["gate"]
    judged = "recall" if gate.get("mode", "point") == "point" else "recall's 95% CI lower bound"
    if gate["passed"]:
        text.append(f"\nrecall gate passed: every critical species' {judged} >= {gate['min_recall']} on val "
                    f"(operating threshold {doc['operating_confidence']})")
    else:
        text.append(f"\nrecall gate FAILED (min_recall {gate['min_recall']}, operating threshold "
                    f"{doc['operating_confidence']}): " + "; ".join(f"{f['species']}: {f['why']}"
                                                               for f in gate["failures"]))
    if doc.get("selection_note"):
        text.append(f"note: {doc['selection_note']}")
    reviews = [r["review_package"] for r in doc["iterations"] if r.get("review_package")]
    if reviews:
        text.append("for review (confident detections nobody labelled): " + ", ".join(reviews))
    return "\n".join(text)
