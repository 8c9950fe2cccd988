"""Pretrained features on real data: the whole Marauder pipeline vs plain Ultralytics in the same wall time.

Data: ../shared/data/underwater-det (220 aquarium photos, 7 classes; critical species starfish,
stingray) and ../shared/data/deepfish-det (210 reef/mangrove frames, one class `fish`, grouped by
habitat so near-duplicate frames never cross splits). The unlabelled pool for SSL and active learning
is ../shared/data/underwater-unlabelled/images (1312 DeepFish frames), symlinked into the workspace.

Protocol, per dataset, in one run on this machine:
1. A fresh workspace bench/work/real_data/<dataset>/: the labelled set symlinked into data/fathomnet/
   (where the organize stage reads), the pool into data/deepfish/images (SSL and active learning).
2. `marauder pipeline --config config/cpu.yaml --skip download --no-vendor-pause` with the dataset's
   classes, critical species and a 0.7/0.15/0.15 split (seed 0; deepfish grouped by habitat). The
   vendor round is skipped: nobody labels the pool here. critical_species.min_recall is set to 0 so a
   missed recall gate does not stop the run (the recall is reported below instead). Stage wall times
   come from the pipeline's own outputs/pipeline/state.json.
3. Every model a stage produced (baseline, critical species, ensemble variants, multi-scale variants,
   the calibrated pipeline via the evaluate stage's report, the exported ONNX package) is evaluated on
   the test split with our evaluator: mAP50, mAP50-95, critical-species recall at the operating point
   (evaluation.operating_conf, or the calibrated per-class thresholds where a pipeline carries them).
4. Peers, each given Ultralytics' `time` = our whole pipeline's wall time: plain `yolo train` from the
   architecture's yaml (from scratch) and from the baseline stage's initialised detector (the same
   SSL start as ours), same data, imgsz and batch, Ultralytics defaults otherwise; evaluated the same way.
The baseline and critical-species models are kept under bench/work/reference/<hash>/ (hash of the data
files, the config text, the bench's overrides and the marauder source) for other benches:
`from bench_real_data import reference_model`.

  python bench/bench_real_data.py [--dataset underwater-det|deepfish-det|all] [--quick]

--quick: a smoke run (40 labelled images, 64 pool images, 1-epoch stages at 64 px) in
bench/work/real_data_quick/; its JSON stays out of bench/out/.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from common import SHARED_DATA, link_labelled_set, row, write_result  # noqa: E402

WORK = HERE / "work"
REFERENCE_DIR = WORK / "reference"
POOL = SHARED_DATA / "underwater-unlabelled" / "images"
SPLIT = (0.7, 0.15, 0.15)
QUICK_IMAGES, QUICK_POOL, QUICK_IMGSZ = 40, 64, 64
POOL_SIZE = 400
TARGET_RATIO, TARGET_WALL_S = 5.0, 1500.0
# The integration test's one-epoch settings (tests/integration/test_pipeline_run.py), for --quick.
QUICK_OVERRIDES = [
    "ssl_pretraining.epochs=1", "ssl_pretraining.warmup_epochs=0", f"ssl_pretraining.max_images={QUICK_POOL}",
    "baseline_yolo.epochs=1", "critical_species.epochs=2", "critical_species.hard_negative_mining.iterations=2",
    "critical_species.hard_negative_mining.epochs_per_iteration=1", "ensemble.epochs=1",
    "multiscale_training.epochs=1", "active_learning.num_samples=8", "evaluation.bootstrap=0",
    *(f"{key}={QUICK_IMGSZ}" for key in (
        "general.imgsz", "baseline_yolo.imgsz", "critical_species.imgsz", "ensemble.imgsz", "ensemble.budget.imgsz",
        "active_learning.imgsz", "tta_calibration.imgsz", "export.imgsz", "evaluation.imgsz",
        "ssl_pretraining.imgsz")),
    f"multiscale_training.resolutions=[{QUICK_IMGSZ},{QUICK_IMGSZ + 32}]",
]


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    critical: tuple[str, ...]
    group_by: str | None  # data.organize.group_by
    target_map50: float

    @property
    def root(self) -> Path:
        return SHARED_DATA / self.name

    @property
    def classes(self) -> list[str]:
        return (self.root / "classes.txt").read_text().split()


DATASETS = {
    "underwater-det": DatasetSpec("underwater-det", ("starfish", "stingray"), None, 0.25),
    "deepfish-det": DatasetSpec("deepfish-det", ("fish",), "meta:habitat", 0.20),
}


# ----------------------------------------------------------------------------------------------
# Config, overrides and the reference-model cache
# ----------------------------------------------------------------------------------------------
def config_path() -> Path:
    """config/cpu.yaml; config/sample.yaml (same schema) until cpu.yaml exists."""
    cpu = REPO / "config" / "cpu.yaml"
    return cpu if cpu.is_file() else REPO / "config" / "sample.yaml"


def yaml_list(items) -> str:
    return "[" + ",".join(str(i) for i in items) + "]"


def pipeline_overrides(spec: DatasetSpec, quick: bool) -> list[str]:
    """section.key=value overrides on top of the config: the dataset's classes and split, plus --quick."""
    from marauder.config.loader import load_config

    out = [f"general.classes={yaml_list(spec.classes)}", f"critical_species.species={yaml_list(spec.critical)}",
           f"data.organize.split={yaml_list(SPLIT)}", "data.organize.seed=0",
           f"data.organize.group_by={spec.group_by or 'null'}", "general.device=cpu",
           "critical_species.min_recall=0.0"]  # a failed gate exits 1 and would stop the pipeline
    if quick:
        out += QUICK_OVERRIDES
    cfg = load_config(config_path(), out)
    if quick:  # variants with their own epochs in the config ignore ensemble.epochs
        out += [f"ensemble.variants.{n}.epochs=1" for n, v in cfg.ensemble.variants.items() if v.epochs]
    weights_dir = getattr(cfg.general, "weights_dir", None)
    if weights_dir and not Path(weights_dir).is_absolute():  # the workspace is wiped each run; weights are not
        out.append(f"general.weights_dir={WORK / 'weights'}")
    if "data/deepfish/images" not in cfg.active_learning.pool_dirs:  # where prepare_workspace links the pool
        out.append(f"active_learning.pool_dirs={yaml_list([*cfg.active_learning.pool_dirs, 'data/deepfish/images'])}")
    return out


def _files_and_sizes(root: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(root)), p.stat().st_size) for p in root.rglob("*") if p.is_file())


def _source_digest() -> str:
    """Content of the marauder package (uncommitted edits included, unlike git HEAD)."""
    h = hashlib.sha256()
    src = REPO / "src" / "marauder"
    for p in sorted(src.rglob("*.py")):
        h.update(str(p.relative_to(src)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def key_inputs(dataset: str, quick: bool = False) -> dict:
    """What the reference models depend on: data files (names, sizes), config text, overrides, code."""
    from importlib.metadata import version

    spec = DATASETS[dataset]
    return {"dataset": dataset, "quick": quick, "files": _files_and_sizes(spec.root),
            "pool": _files_and_sizes(POOL), "config": config_path().read_text(),
            "overrides": pipeline_overrides(spec, quick), "marauder": version("marauder"), "src": _source_digest()}


def digest(inputs: dict) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]


def reference_key(dataset: str, quick: bool = False) -> str:
    return digest(key_inputs(dataset, quick))


def reference_model(dataset: str, which: str = "critical_species", quick: bool = False) -> Path | None:
    """The cached model of this bench's last full run on `dataset` for today's data, config and code
    ("critical_species" or "baseline"), or None when it has not been built. Its split is in manifest.json
    beside it."""
    path = REFERENCE_DIR / reference_key(dataset, quick) / f"{which}.pt"
    return path if path.is_file() else None


def store_reference(ws, spec: DatasetSpec, inputs: dict, summary: dict) -> Path:
    """Keep the baseline and critical-species models under the key of the data, config and code they came
    from (`inputs`, taken when the run started)."""
    key = digest(inputs)
    if reference_key(spec.name, inputs["quick"]) != key:  # src/ or the config was edited while the pipeline ran
        print(f"[{spec.name}] warning: code or config changed during the run; the reference is stored under "
              "the key of the code it was trained with, so reference_model() will not return it", flush=True)
    dest = REFERENCE_DIR / key
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ws.baseline_best, dest / "baseline.pt")
    shutil.copy2(ws.critical_best, dest / "critical_species.pt")
    shutil.copy2(ws.organized_dir / "manifest.json", dest / "manifest.json")  # which image is in which split
    small = {k: v for k, v in inputs.items() if k not in ("files", "pool", "config")}
    small.update(files=len(inputs["files"]), pool=len(inputs["pool"]), config=str(config_path()))
    (dest / "meta.json").write_text(json.dumps({"workspace": str(ws.root), "created": time.time(), "key": key,
                                                "key_inputs": small, **summary}, indent=2) + "\n")
    return dest


# ----------------------------------------------------------------------------------------------
# Workspace and runs
# ----------------------------------------------------------------------------------------------
def prepare_workspace(root: Path, spec: DatasetSpec, quick: bool):
    """A fresh workspace (stale stages would be skipped and mistimed): labelled set + pool, both linked."""
    from marauder.workspace import Workspace

    shutil.rmtree(root, ignore_errors=True)
    ws = Workspace.at(root)
    names = sorted(p.name for p in (spec.root / "images").glob("*.jpg"))
    # "a few hundred" images for the CPU recipe: scoring all 1312 frames for active learning alone
    # would take a tenth of the wall budget
    pool = random.Random(0).sample(sorted(POOL.glob("*.jpg")), POOL_SIZE)
    if quick:
        names = random.Random(0).sample(names, min(QUICK_IMAGES, len(names)))
        pool = random.Random(0).sample(pool, min(QUICK_POOL, len(pool)))
    link_labelled_set(ws.data_dir, spec.root, folder="fathomnet", names=names)
    for extra in ("classes.txt", "source_map.csv"):  # organize reads both beside images/ (names, habitat)
        shutil.copy(spec.root / extra, ws.fathomnet_dir / extra)
    ws.deepfish_images.mkdir(parents=True)
    for p in pool:
        os.symlink(p, ws.deepfish_images / p.name)
    print(f"[{spec.name}] workspace {root}: {len(names)} labelled images, {len(pool)} pool images", flush=True)
    return ws


def tool(name: str) -> list[str]:
    """A console script of this venv (marauder, yolo), else the same through the interpreter."""
    exe = Path(sys.executable).parent / name
    if exe.is_file():
        return [str(exe)]
    module = {"marauder": "marauder.cli"}.get(name)
    if module:
        return [sys.executable, "-m", module]
    return [sys.executable, "-c", "import sys; from ultralytics.cfg import entrypoint; sys.argv[0] = 'yolo'; "
                                  "entrypoint()"]


def read_state(ws) -> dict:
    try:
        return json.loads((ws.outputs("pipeline") / "state.json").read_text())["stages"]
    except (OSError, ValueError, KeyError):
        return {}


def run_pipeline(ws, spec: DatasetSpec, overrides: list[str]) -> tuple[int, float, dict]:
    """Run `marauder pipeline` as a subprocess (output to a log), printing each stage as it changes."""
    log = ws.root / "bench_logs" / "pipeline.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [*tool("marauder"), "pipeline", "--config", str(config_path()), "--workspace", str(ws.root),
           "--skip", "download", "--no-vendor-pause", *overrides]
    (log.parent / "pipeline.cmd").write_text(" ".join(cmd) + "\n")
    start = time.perf_counter()
    seen: dict[str, str] = {}
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT)
        while True:
            try:
                rc = proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                rc = None
            for name, rec in read_state(ws).items():
                if seen.get(name) != rec["status"]:
                    seen[name] = rec["status"]
                    took = f" in {rec['seconds']:.1f}s" if rec.get("seconds") is not None else ""
                    metric = f" ({rec['metric']})" if rec.get("metric") else ""
                    print(f"[{spec.name}] {time.perf_counter() - start:6.0f}s  {name}: {rec['status']}{took}{metric}",
                          flush=True)
            if rc is not None:
                break
    wall = time.perf_counter() - start
    if rc != 0:
        print(f"[{spec.name}] pipeline exit {rc}; last lines of {log}:\n" + tail(log), flush=True)
    return rc, wall, read_state(ws)


def tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def init_checkpoint(ws) -> tuple[Path | None, str]:
    """The baseline stage's initialised detector (our SSL start), and a note when it is not where expected."""
    expected = ws.runs_dir / "baseline_init.pt"
    if expected.is_file():
        return expected, ""
    found = sorted(ws.runs_dir.glob("*init*.pt"))
    if found:
        return found[0], f"{expected.name} absent; used {found[0].name}"
    return None, f"{expected.name} absent and no runs/*init*.pt (baseline_yolo.use_ssl_backbone off?)"


def train_peer(ws, spec: DatasetSpec, name: str, model: str, cfg, budget_s: float) -> dict:
    """Plain `yolo train` with Ultralytics' `time` (hours) = our pipeline's wall time."""
    imgsz = cfg.baseline_yolo.imgsz or cfg.general.imgsz
    batch = 16 if cfg.baseline_yolo.batch_size == "auto" else cfg.baseline_yolo.batch_size
    project = ws.root / "peers"
    args = [f"model={model}", f"data={ws.dataset_yaml}", f"imgsz={imgsz}", f"time={budget_s / 3600:.6f}",
            f"batch={batch}", "device=cpu", "workers=0", "seed=0", "amp=False", "plots=False",
            f"project={project}", f"name={name}", "exist_ok=True"]
    log = ws.root / "bench_logs" / f"peer_{name}.log"
    print(f"[{spec.name}] peer {name}: yolo train model={Path(model).name} time={budget_s:.0f}s", flush=True)
    start = time.perf_counter()
    with log.open("w") as fh:
        rc = subprocess.call([*tool("yolo"), "detect", "train", *args], cwd=REPO, stdout=fh, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    best = project / name / "weights" / "best.pt"
    results = project / name / "results.csv"
    epochs = max(0, len(results.read_text().splitlines()) - 1) if results.is_file() else 0
    print(f"[{spec.name}] peer {name}: exit {rc} in {seconds:.0f}s, {epochs} epochs", flush=True)
    if rc != 0 or not best.is_file():
        print(tail(log), flush=True)
    return {"name": name, "model": model, "rc": rc, "seconds": round(seconds, 1), "epochs": epochs,
            "best": best if best.is_file() else None, "imgsz": imgsz, "batch": batch}


# ----------------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------------
class PackagePredictor:
    """The exported package through the edge runtime (ONNX Runtime), as Detections for our evaluator.
    Scores are kept down to raw_confidence (mAP needs them); its per-class thresholds set the operating point."""

    def __init__(self, package_dir: Path):
        from marauder.runtime.pipeline import EdgePipeline

        self.pipeline = EdgePipeline(package_dir, backend="onnx", apply_thresholds=False, threads=os.cpu_count())
        self.class_names = list(self.pipeline.class_names)
        self.thresholds = self.pipeline.thresholds
        self.name = f"package {package_dir.name} (onnx)"

    def predict(self, images):
        return self.pipeline.predict(images)


def summarise(summary: dict, critical: tuple[str, ...]) -> dict:
    rec = summary.get("critical_recall", {})
    return {"mAP50": summary.get("mAP50"), "mAP50-95": summary.get("mAP50-95"),
            "recall": {c: rec.get(c, {}).get("recall") for c in critical},
            "threshold": {c: rec.get(c, {}).get("threshold") for c in critical}}


def evaluate(model, ws, cfg, spec: DatasetSpec) -> dict:
    """Our evaluator on the test split, with the config's evaluation settings (no bootstrap, no crops)."""
    from marauder.evaluate.stage import run_evaluation

    eval_cfg = cfg.evaluation.model_copy(update={"bootstrap": 0, "worst_examples": 0})
    imgsz = cfg.evaluation.imgsz or cfg.general.imgsz  # a .pt predictor would otherwise run at 640
    result = run_evaluation(eval_cfg, model, ws.dataset_yaml, critical_species=list(spec.critical), device="cpu",
                            split="test", imgsz=imgsz)
    return summarise(result.report.summary, spec.critical)


def evaluate_stage_report(ws, spec: DatasetSpec) -> dict | None:
    """The evaluate stage's own report on the calibrated pipeline (it already ran on the test split)."""
    path = ws.outputs("evaluation") / "pipeline" / "report.json"
    if not path.is_file():
        return None
    report = json.loads(path.read_text())
    out = summarise(report["summary"], spec.critical)
    out["split"] = report.get("meta", {}).get("split")
    return out


def stage_models(ws, cfg) -> dict[str, list[tuple[str, object]]]:
    """stage -> [(label, model path or predictor factory)] for every stage that makes a model."""
    variants = list(cfg.ensemble.variants)
    return {
        "train-baseline": [("baseline", ws.baseline_best)],
        "train-critical": [("critical_species", ws.critical_best)],
        "train-ensemble": [(f"ensemble/{v}", ws.ensemble_dir(v) / "best.pt") for v in variants],
        "train-multiscale": [(f"ensemble/{v}_multiscale", ws.checkpoints("ensemble") / f"{v}_multiscale" / "best.pt")
                             for v in variants],
        "export": [("deployment package (onnx)", lambda: PackagePredictor(ws.deployment_dir))],
    }


def stage_table(ws, cfg, spec: DatasetSpec, state: dict) -> list[dict]:
    """One row per stage and model: its wall time and, where it made a model, test metrics."""
    from marauder.pipeline.stages import STAGE_NAMES

    models = stage_models(ws, cfg)
    table = []
    for stage in STAGE_NAMES:
        rec = state.get(stage, {})
        base = {"stage": stage, "status": rec.get("status", "not run"), "seconds": rec.get("seconds"),
                "stage_metric": rec.get("metric")}
        if stage == "download":
            table.append({**base, "status": "skipped", "model": None,
                          "stage_metric": "--skip download: the labelled set is linked from ../shared/data"})
            continue
        if stage == "calibrate":  # pipeline_config.yaml, measured by the evaluate stage
            metrics = evaluate_stage_report(ws, spec) if state.get("evaluate", {}).get("status") == "done" else None
            entry = {**base, "model": "calibrated pipeline (evaluate stage report.json)", **(metrics or {})}
            if metrics and metrics.get("split") != "test":
                entry["error"] = f"evaluate stage ran on the {metrics.get('split')} split (evaluation.split)"
            table.append(entry)
            continue
        if stage not in models or base["status"] != "done":  # no model, or the stage was skipped / disabled
            table.append({**base, "model": None})
            continue
        for label, model in models[stage]:
            entry = {**base, "model": label}
            print(f"[{spec.name}] evaluating {label} on test", flush=True)
            try:
                entry.update(evaluate(model() if callable(model) else model, ws, cfg, spec))
            except Exception as exc:  # noqa: BLE001 - one missing model must not lose the others' numbers
                entry["error"] = f"{type(exc).__name__}: {exc}"
                print(f"[{spec.name}]   {label}: {entry['error']}", flush=True)
            table.append(entry)
    return table


# ----------------------------------------------------------------------------------------------
# One dataset, then the report
# ----------------------------------------------------------------------------------------------
def run_dataset(spec: DatasetSpec, quick: bool) -> dict:
    from marauder.config.loader import load_config

    overrides = pipeline_overrides(spec, quick)
    cfg = load_config(config_path(), overrides)
    inputs = key_inputs(spec.name, quick)
    key = digest(inputs)
    ws = prepare_workspace(WORK / ("real_data_quick" if quick else "real_data") / spec.name, spec, quick)
    print(f"[{spec.name}] marauder pipeline with {config_path().name} (+{len(overrides)} overrides)", flush=True)
    rc, wall, state = run_pipeline(ws, spec, overrides)
    result = {"dataset": spec.name, "config": str(config_path().relative_to(REPO)), "overrides": overrides,
              "pipeline_rc": rc, "wall_s": round(wall, 1), "workspace": str(ws.root), "reference_key": key}
    if rc != 0:
        result["error"] = f"pipeline exit {rc}; see {ws.root / 'bench_logs' / 'pipeline.log'}"
        result["table"] = [{"stage": n, **r} for n, r in state.items()]
        return result
    table = stage_table(ws, cfg, spec, state)
    init, init_note = init_checkpoint(ws)
    arch = Path(cfg.baseline_yolo.model_size).stem + ".yaml"  # same architecture as ours, no weights
    peers = {"scratch": train_peer(ws, spec, "scratch", arch, cfg, wall)}
    if init is not None:
        peers["pretrained"] = train_peer(ws, spec, "pretrained", str(init), cfg, wall)
    for name, peer in peers.items():
        label = f"plain Ultralytics, {'from scratch' if name == 'scratch' else 'from ' + Path(peer['model']).name}"
        entry = {"stage": f"peer-{name}", "status": "done" if peer["best"] else "failed", "seconds": peer["seconds"],
                 "stage_metric": f"{peer['epochs']} epochs", "model": label}
        if peer["best"]:
            print(f"[{spec.name}] evaluating peer {name} on test", flush=True)
            try:
                entry.update(evaluate(peer["best"], ws, cfg, spec))
            except Exception as exc:  # noqa: BLE001 - keep the pipeline's numbers
                entry["error"] = f"{type(exc).__name__}: {exc}"
        peer["best"] = str(peer["best"]) if peer["best"] else None
        table.append(entry)
    init_report = ws.checkpoints("baseline") / "init.json"  # what the baseline started from, when written
    result.update(table=table, peers=peers, init_checkpoint=str(init) if init else None, init_note=init_note,
                  baseline_init=json.loads(init_report.read_text()) if init_report.is_file() else None)
    if ws.baseline_best.is_file() and ws.critical_best.is_file():
        final = final_row(table)
        result["reference_dir"] = str(store_reference(ws, spec, inputs, {"final": final, "wall_s": result["wall_s"]}))
    return result


def final_row(table: list[dict]) -> dict:
    """The shipped model's numbers: the exported package, else the calibrated pipeline."""
    by_stage = {r["stage"]: r for r in table if r.get("mAP50") is not None}
    return by_stage.get("export") or by_stage.get("calibrate") or {}


def headline_rows(res: dict, spec: DatasetSpec) -> list[dict]:
    ds = spec.name
    if res.get("pipeline_rc") != 0:
        return [row(f"{ds}: pipeline", None, notes=res.get("error", ""))]
    final = final_row(res["table"])
    peers = {r["stage"]: r for r in res["table"] if r["stage"].startswith("peer-")}
    scratch, pre = peers.get("peer-scratch", {}), peers.get("peer-pretrained", {})
    same = f"same wall time ({res['wall_s']:.0f}s), same data/imgsz/batch"
    rows = [
        row(f"{ds}: final package test mAP50 vs plain Ultralytics from scratch", final.get("mAP50"),
            scratch.get("mAP50"), "yolo train from yaml", target=f">= {spec.target_map50}; ratio >= {TARGET_RATIO:g}x",
            notes=f"final = {final.get('model')}; peer {same}, {scratch.get('stage_metric')}"),
        row(f"{ds}: final package test mAP50 vs plain Ultralytics from our initialised detector", final.get("mAP50"),
            pre.get("mAP50"), "yolo train from the baseline's init .pt",
            notes=f"peer {same}, {pre.get('stage_metric')}; {res.get('init_note') or res.get('init_checkpoint')}"),
        row(f"{ds}: final package test mAP50-95 vs plain Ultralytics from scratch", final.get("mAP50-95"),
            scratch.get("mAP50-95"), "yolo train from yaml"),
    ]
    for c in spec.critical:
        rows.append(row(f"{ds}: final package test recall {c} at the operating point vs from scratch",
                        (final.get("recall") or {}).get(c), (scratch.get("recall") or {}).get(c),
                        "yolo train from yaml",
                        notes=f"thresholds: ours {(final.get('threshold') or {}).get(c)}, "
                              f"peer {(scratch.get('threshold') or {}).get(c)}"))
    rows.append(row(f"{ds}: whole pipeline wall time vs the from-scratch peer's", res["wall_s"],
                    scratch.get("seconds"), "yolo train time=<ours>", units="s", target=f"<= {TARGET_WALL_S:g} s",
                    higher_is_better=False, notes="peer: Ultralytics' time cap covers its training loop only"))
    return rows


def targets(res: dict, spec: DatasetSpec) -> dict:
    if res.get("pipeline_rc") != 0:
        return {}
    final = final_row(res["table"])
    scratch = next((r for r in res["table"] if r["stage"] == "peer-scratch"), {})
    m, p = final.get("mAP50"), scratch.get("mAP50")
    ratio = m / p if m is not None and p else None
    return {"final_mAP50": {"value": m, "target": spec.target_map50, "met": m is not None and m >= spec.target_map50},
            "ratio_vs_scratch": {"value": ratio, "target": TARGET_RATIO, "met": ratio is not None and ratio >= TARGET_RATIO},
            "wall_s": {"value": res["wall_s"], "target": TARGET_WALL_S, "met": res["wall_s"] <= TARGET_WALL_S}}


def fmt(x, spec: str = ".3f") -> str:
    return "-" if x is None else format(x, spec)


def markdown(res: dict, spec: DatasetSpec) -> str:
    crit = spec.critical
    lines = [f"### {spec.name} (pipeline {fmt(res.get('wall_s'), '.0f')} s, exit {res.get('pipeline_rc')})", "",
             "| stage | model | stage s | mAP50 | mAP50-95 | " + " | ".join(f"recall {c}" for c in crit) + " | note |",
             "|---|---|---|---|---|" + "---|" * len(crit) + "---|"]
    for r in res.get("table", []):
        rec = r.get("recall") or {}
        note = r.get("error") or r.get("stage_metric") or ""
        lines.append(f"| {r['stage']} | {r.get('model') or ''} | {fmt(r.get('seconds'), '.1f')} | {fmt(r.get('mAP50'))} | "
                     f"{fmt(r.get('mAP50-95'))} | " + " | ".join(fmt(rec.get(c)) for c in crit) + f" | {note} |")
    lines.append("")
    for name, t in targets(res, spec).items():
        lines.append(f"- target {name}: {fmt(t['value'])} vs {t['target']:g} -> {'met' if t['met'] else 'NOT met'}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=[*DATASETS, "all"], default="all")
    parser.add_argument("--quick", action="store_true", help="smoke run: 40 images, 1-epoch stages, 64 px")
    args = parser.parse_args()
    names = list(DATASETS) if args.dataset == "all" else [args.dataset]
    missing = [n for n in [*names, "underwater-unlabelled"] if not (SHARED_DATA / n).is_dir()]
    names = [n for n in names if n not in missing]
    if missing:
        print(f"skipped {', '.join(missing)}: not in {SHARED_DATA}")
    if not names or not POOL.is_dir():
        return 0
    print(f"config {config_path()}" + ("" if config_path().name == "cpu.yaml" else " (config/cpu.yaml not found)"))
    results, rows = [], []
    for name in names:
        spec = DATASETS[name]
        res = run_dataset(spec, args.quick)
        res["targets"] = targets(res, spec)
        results.append(res)
        rows += headline_rows(res, spec)
    out_dir = WORK / "real_data_quick" if args.quick else None
    write_result("real_data", "Whole pipeline (SSL start) vs plain Ultralytics in the same wall time, real data",
                 rows, {"quick": args.quick, "config": str(config_path().relative_to(REPO)),
                        "table": {r["dataset"]: r.get("table", []) for r in results}, "datasets": results},
                 out_dir=out_dir)
    print("\n" + "\n\n".join(markdown(r, DATASETS[r["dataset"]]) for r in results))
    return 0 if all(r.get("pipeline_rc") == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
