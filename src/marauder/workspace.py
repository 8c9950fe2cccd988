"""The workspace owns every path the training guide names.

Ask the workspace for a stage's folder or a named file instead of joining path strings, so a
`--workspace DIR` moves everything at once and the guide's layout lives in one place. STAGE_FOLDERS
ties each stage's command to its config section, log name, checkpoint and output folders. A stage's
own files inside its folder (a report beside its plots) are named by the module that writes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class StageFolders:
    """One stage's names in one row: `marauder <command>`, the config section it is about, its log
    (logs/<log>.log), its checkpoint folder (checkpoints/<checkpoints>/) and output folder (outputs/<outputs>/)."""

    command: str
    section: str | None
    log: str
    checkpoints: str | None = None
    outputs: str | None = None


# The guide's layout, stage by stage (log names as the guide gives them, e.g. logs/5a_ensemble.log).
STAGE_FOLDERS = {s.command: s for s in (
    StageFolders("sample", None, "sample"),
    StageFolders("download", "data", "download"),
    StageFolders("ingest", "data", "ingest"),
    StageFolders("organize", "data", "organize"),
    StageFolders("validate-data", "data", "validate_data"),
    StageFolders("sync", "storage", "sync"),
    StageFolders("ssl-pretrain", "ssl_pretraining", "1_ssl_pretrain", checkpoints="ssl"),
    StageFolders("lr-find", "baseline_yolo", "lr_find"),
    StageFolders("train-baseline", "baseline_yolo", "1_baseline", checkpoints="baseline"),
    StageFolders("active-learn", "active_learning", "3_active_learning", outputs="active_learning"),
    StageFolders("import-annotations", "active_learning", "3b_import_annotations", outputs="active_learning"),
    StageFolders("train-critical", "critical_species", "4_critical_species", checkpoints="critical_species"),
    StageFolders("train-ensemble", "ensemble", "5a_ensemble", checkpoints="ensemble", outputs="ensemble"),
    StageFolders("train-multiscale", "multiscale_training", "6_multiscale", checkpoints="ensemble",
                 outputs="multiscale"),
    StageFolders("calibrate", "tta_calibration", "7_tta_calibration", checkpoints="tta_calibration"),
    StageFolders("export", "export", "8_tensorrt_export", checkpoints="tensorrt"),
    StageFolders("evaluate", "evaluation", "evaluation", outputs="evaluation"),
    StageFolders("pipeline", None, "pipeline", outputs="pipeline"),
)}


@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def at(cls, root: str | Path | None = None) -> Workspace:
        return cls(Path(root or ".").resolve())

    def path(self, relative: str | Path) -> Path:
        """Resolve a path from the config: absolute stays, relative is under the workspace root."""
        p = Path(relative).expanduser()
        return p if p.is_absolute() else self.root / p

    # -- data -------------------------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def fathomnet_dir(self) -> Path:
        return self.data_dir / "fathomnet"

    @property
    def fathomnet_images(self) -> Path:
        return self.fathomnet_dir / "images"

    @property
    def fathomnet_labels(self) -> Path:
        return self.fathomnet_dir / "labels"

    @property
    def fathomnet_metadata(self) -> Path:
        return self.fathomnet_dir / "metadata.json"

    @property
    def deepfish_images(self) -> Path:
        return self.data_dir / "deepfish" / "images"

    @property
    def marauder_images(self) -> Path:
        return self.data_dir / "marauder" / "images"

    @property
    def organized_dir(self) -> Path:
        return self.data_dir / "organized"

    @property
    def dataset_yaml(self) -> Path:
        return self.organized_dir / "dataset.yaml"

    def organized_images(self, split: str) -> Path:
        return self.organized_dir / "images" / split

    def organized_labels(self, split: str) -> Path:
        return self.organized_dir / "labels" / split

    @property
    def annotated_dir(self) -> Path:
        return self.data_dir / "annotated"

    @property
    def annotated_labels(self) -> Path:
        return self.annotated_dir / "labels"

    @property
    def unlabelled_dirs(self) -> list[Path]:
        """Folders whose images serve as an unlabelled pool (SSL, active learning)."""
        return [self.deepfish_images, self.marauder_images]

    # -- checkpoints and outputs -------------------------------------------------------------
    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "checkpoints"

    def checkpoints(self, stage: str) -> Path:
        """checkpoints/<stage>/, e.g. ssl, baseline, critical_species, ensemble, tta_calibration."""
        return self.checkpoints_dir / stage

    @property
    def ssl_best(self) -> Path:
        return self.checkpoints("ssl") / "best_moco.pth"

    @property
    def ssl_last(self) -> Path:
        return self.checkpoints("ssl") / "last_moco.pth"

    @property
    def baseline_best(self) -> Path:
        return self.checkpoints("baseline") / "best.pt"

    @property
    def critical_best(self) -> Path:
        return self.checkpoints("critical_species") / "best.pt"

    def ensemble_dir(self, variant: str) -> Path:
        return self.checkpoints("ensemble") / variant

    def multiscale_dir(self, variant: str) -> Path:
        """checkpoints/ensemble/<variant>_multiscale/: the variant after its multi-scale epochs."""
        return self.checkpoints("ensemble") / f"{variant}_multiscale"

    @property
    def ensemble_validation(self) -> Path:
        return self.outputs("ensemble") / "validation.json"

    @property
    def multiscale_comparison(self) -> Path:
        return self.outputs("multiscale") / "multiscale_comparison.json"

    def stage_metrics(self, checkpoints: str) -> Path:
        """checkpoints/<stage>/metrics.jsonl, one line per epoch (or iteration)."""
        return self.checkpoints(checkpoints) / "metrics.jsonl"

    @property
    def pipeline_config(self) -> Path:
        return self.checkpoints("tta_calibration") / "pipeline_config.yaml"

    @property
    def calibrator(self) -> Path:
        return self.checkpoints("tta_calibration") / "calibrator.pth"

    @property
    def calibration_report(self) -> Path:
        return self.checkpoints("tta_calibration") / "report.json"

    @property
    def deployment_dir(self) -> Path:
        return self.checkpoints("tensorrt") / "nano_deployment"

    @property
    def deployment_config(self) -> Path:
        return self.deployment_dir / "deployment_config.yaml"

    @property
    def parity_report(self) -> Path:
        return self.checkpoints("tensorrt") / "validation" / "parity_report.json"

    @property
    def outputs_dir(self) -> Path:
        return self.root / "outputs"

    def outputs(self, stage: str) -> Path:
        return self.outputs_dir / stage

    def stage_checkpoints(self, command: str) -> Path:
        """The checkpoint folder of `marauder <command>` (STAGE_FOLDERS)."""
        return self.checkpoints(_folder(command, "checkpoints"))

    def stage_outputs(self, command: str) -> Path:
        """The output folder of `marauder <command>` (STAGE_FOLDERS)."""
        return self.outputs(_folder(command, "outputs"))

    @property
    def annotation_package(self) -> Path:
        return self.outputs("active_learning") / "annotation_package.zip"

    @property
    def selection_ledger(self) -> Path:
        """Every image active learning has sent, across rounds."""
        return self.outputs("active_learning") / "ledger.csv"

    def evaluation_report(self, name: str = "pipeline") -> Path:
        """outputs/evaluation/<name>/report.json (the pipeline's own evaluation is 'pipeline')."""
        return self.outputs("evaluation") / name / "report.json"

    @property
    def pipeline_state(self) -> Path:
        return self.outputs("pipeline") / "state.json"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    def log_file(self, stage: str) -> Path:
        """logs/<stage>.log; the guide names e.g. logs/1_baseline.log and logs/5a_ensemble.log."""
        return self.logs_dir / f"{stage}.log"

    @property
    def runs_dir(self) -> Path:
        """Scratch space for Ultralytics' own run folders (TensorBoard events live here)."""
        return self.root / "runs"


def _folder(command: str, kind: str) -> str:
    folder = getattr(STAGE_FOLDERS[command], kind)
    if folder is None:
        raise KeyError(f"stage '{command}' has no {kind} folder")
    return folder
