"""The training guide's Python API for the annotation vendor (Mindy Services): a thin wrapper.

    from data.active_learning.mindy_services_handler import MindyServicesHandler
    handler = MindyServicesHandler('config/training_config.yaml')
    handler.import_annotations('path/to/annotations.json', 'data/annotated/labels')

All logic lives in `marauder.active`; run from the repository (workspace) root.
"""

from __future__ import annotations

from pathlib import Path

from marauder.active import ImportResult, import_annotations, run_active_learning
from marauder.config import load_config
from marauder.log import setup_logging
from marauder.workspace import Workspace


class MindyServicesHandler:
    def __init__(self, config_path: str | Path | None = "config/training_config.yaml",
                 workspace: str | Path | None = None, overrides: list[str] | None = None):
        self.workspace = Workspace.at(workspace)
        path = None if config_path is None else self.workspace.path(config_path)
        self.config = load_config(path, overrides)
        setup_logging(self.workspace.log_file("3b_import_annotations"), self.config.logging.level)

    def export_package(self):
        """Select images and write outputs/active_learning/annotation_package.zip (as `marauder active-learn`)."""
        g = self.config.general
        return run_active_learning(self.config.active_learning, self.workspace,
                                   extra_pool_dirs=list(self.config.data.extra_unlabelled_dirs), imgsz=g.imgsz,
                                   device=None if g.device == "auto" else str(g.device))

    def import_annotations(self, annotations: str | Path, output_dir: str | Path = "data/annotated/labels", *,
                           package: str | Path | None = None, merge: bool = False,
                           strict: bool = False) -> ImportResult:
        """Vendor COCO (.json or returned .zip) -> YOLO labels in `output_dir`, with report and QA diff."""
        return import_annotations(self.config.active_learning, self.workspace, self.workspace.path(annotations),
                                  output=output_dir, package=self.workspace.path(package) if package else None,
                                  merge=merge, strict=strict)
