"""The workspace owns every path the training guide names.

No other module joins path strings for these locations: ask the workspace instead, so a
`--workspace DIR` moves everything at once and the guide's layout lives in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SPLITS = ("train", "val", "test")


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

    @property
    def pipeline_config(self) -> Path:
        return self.checkpoints("tta_calibration") / "pipeline_config.yaml"

    @property
    def calibrator(self) -> Path:
        return self.checkpoints("tta_calibration") / "calibrator.pth"

    @property
    def deployment_dir(self) -> Path:
        return self.checkpoints("tensorrt") / "nano_deployment"

    @property
    def outputs_dir(self) -> Path:
        return self.root / "outputs"

    def outputs(self, stage: str) -> Path:
        return self.outputs_dir / stage

    @property
    def annotation_package(self) -> Path:
        return self.outputs("active_learning") / "annotation_package.zip"

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
