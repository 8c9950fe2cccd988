"""Training plumbing every stage can reuse: experiment tracking, checkpoint retention, resume detection.

Tracking writes the same scalars to three sinks: a JSON-lines file beside the checkpoints (always),
TensorBoard (when `logging.tensorboard`), and Weights & Biases (when `logging.wandb.enabled`; offline
when no API key is configured, so it never prompts).
"""

from __future__ import annotations

import json
import netrc
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from ..config.sections.general import LoggingConfig, WandbConfig
from ..errors import DataError
from ..fsio import atomic_write_text
from ..log import get_logger

log = get_logger("train")


def wandb_mode(cfg: WandbConfig) -> str:
    """'online' only with an API key; never a login prompt. WANDB_MODE=disabled in the env wins."""
    if os.environ.get("WANDB_MODE") == "disabled" or not cfg.enabled:
        return "disabled"
    if cfg.mode != "auto":
        return cfg.mode
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    try:
        if netrc.netrc().authenticators("api.wandb.ai"):
            return "online"
    except (FileNotFoundError, netrc.NetrcParseError):
        pass
    return "offline"


class Tracker:
    """Log scalar dicts per step to JSONL, TensorBoard and W&B."""

    def __init__(self, jsonl: Path | None, logging_cfg: LoggingConfig | None = None, *,
                 tb_dir: Path | None = None, run_name: str = "marauder", run_config: dict | None = None,
                 append: bool = True):
        self.jsonl = Path(jsonl) if jsonl else None
        if self.jsonl:
            self.jsonl.parent.mkdir(parents=True, exist_ok=True)
            if not append and self.jsonl.exists():
                self.jsonl.unlink()
        self._tb = None
        self._wandb = None
        self._settings = (logging_cfg or LoggingConfig(), tb_dir, run_name, run_config)
        self._open()

    def _open(self) -> None:
        cfg, tb_dir, run_name, run_config = self._settings
        if cfg.tensorboard and tb_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(tb_dir))
        mode = wandb_mode(cfg.wandb)
        if mode != "disabled":
            import wandb

            w = cfg.wandb
            self._wandb = wandb.init(
                project=w.project, entity=w.entity, name=w.name or run_name, tags=list(w.tags), mode=mode,
                dir=str((tb_dir or Path(".")).parent), config=run_config or {}, reinit=True,
            )
            log.info("W&B run %s (%s mode)", self._wandb.name, mode)

    def __getstate__(self) -> dict:
        """Ultralytics' DDP launcher pickles the trainer callbacks (and so this tracker) into its worker:
        the open writers cannot travel, the settings do, and the worker reopens the sinks there."""
        return {**self.__dict__, "_tb": None, "_wandb": None, "_reopen": self._tb is not None or self._wandb is not None}

    def __setstate__(self, state: dict) -> None:
        reopen = state.pop("_reopen", False)
        self.__dict__.update(state)
        if reopen:
            self._open()

    def log(self, metrics: dict, step: int) -> None:
        scalars = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}
        if self.jsonl:
            with self.jsonl.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps({"step": step, "time": round(time.time(), 3), **scalars}) + "\n")
        if self._tb:
            for k, v in scalars.items():
                self._tb.add_scalar(k, v, step)
            self._tb.flush()
        if self._wandb:
            self._wandb.log(scalars, step=step)

    def close(self) -> None:
        if self._tb:
            self._tb.close()
            self._tb = None
        if self._wandb:
            self._wandb.finish()
            self._wandb = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def write_jsonl(path: Path, rows: Iterable[dict]) -> Path:
    """Replace a JSON-lines file atomically (used when a full history is re-derived, e.g. after resume)."""
    return atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


_EPOCH = re.compile(r"epoch(\d+)")


def prune_checkpoints(folder: Path, keep: int, pattern: str = "epoch*.pt") -> list[Path]:
    """Keep the `keep` highest-numbered epoch checkpoints in folder; return the ones removed."""
    found = []
    for p in Path(folder).glob(pattern):
        m = _EPOCH.search(p.stem)
        if m:
            found.append((int(m.group(1)), p))
    found.sort()
    removed = [p for _, p in found[:-keep]] if keep > 0 else [p for _, p in found]
    for p in removed:
        p.unlink(missing_ok=True)
    return removed


def pick_resume(explicit: str | Path | None, last: Path | Sequence[Path],
                is_unfinished: Callable[[Path], bool]) -> Path | None:
    """The checkpoint to resume from: --resume PATH when given, else the first unfinished candidate.

    Several candidates cover a kill during a checkpoint write: the engine's own last.pt may be
    truncated, while the copy mirrored (atomically) into checkpoints/<stage>/ is intact.
    """
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise DataError(f"--resume: checkpoint {path} does not exist")
        if not is_unfinished(path):
            raise DataError(f"--resume: {path} is from a run that already finished; nothing to resume", file=str(path))
        return path
    for candidate in [last] if isinstance(last, Path) else list(last):
        if candidate.is_file() and is_unfinished(candidate):
            return candidate
    return None


def double_until_failure(fits: Callable[[int], bool], start: int, limit: int) -> int | None:
    """Largest of start, 2*start, 4*start, ... (<= limit) for which fits() holds; None if start fails."""
    best = None
    batch = start
    while batch <= limit and fits(batch):
        best = batch
        batch *= 2
    return best
