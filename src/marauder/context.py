"""What every command receives: the workspace, the (lazily loaded) config, and stage set-up."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from .config import MarauderConfig, load_config, save_resolved
from .log import setup_logging
from .workspace import Workspace

DEFAULT_CONFIG = Path("config") / "training_config.yaml"


@dataclass
class Context:
    workspace: Workspace
    config_path: Path | None = None
    overrides: list[str] = field(default_factory=list)

    @cached_property
    def resolved_config_path(self) -> Path | None:
        """--config, else config/training_config.yaml in the workspace when present, else None (defaults)."""
        if self.config_path is None and (self.workspace.root / DEFAULT_CONFIG).is_file():
            return self.workspace.root / DEFAULT_CONFIG
        return self.config_path

    @cached_property
    def config(self) -> MarauderConfig:
        return load_config(self.resolved_config_path, self.overrides)

    def start_stage(self, command: str, output_dir: Path | None = None) -> logging.Logger:
        """Log to the stage's log (logs/<name>.log, named in workspace.STAGE_FOLDERS) and save the resolved
        config beside its outputs."""
        from .workspace import STAGE_FOLDERS

        log_name = STAGE_FOLDERS[command].log
        logger = setup_logging(self.workspace.log_file(log_name), self.config.logging.level)
        from .fsio import clean_leftovers
        from .journal import recover

        for line in recover(self.workspace.root):  # before any cleaning: a committed plan's staged files
            logger.info("journal: %s", line)
        if output_dir is not None and (n := clean_leftovers(output_dir)):
            logger.info("removed %d leftover(s) of an interrupted run under %s", n, output_dir)
        if output_dir is not None:
            save_resolved(self.config, output_dir)
        logger.info("stage %s: workspace %s, config %s", log_name, self.workspace.root,
                    self.resolved_config_path or "<defaults>")
        return logger
