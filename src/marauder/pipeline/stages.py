"""The guide's stage order. Each stage declares itself next to its command (`STAGE` in
commands/<name>.py, see marauder.pipeline.declare); this module only puts them in order.

A stage is "up to date" when its outputs exist and the fingerprint of its declared config sections
and inputs equals the one recorded after its last successful run.
"""

from __future__ import annotations

import importlib

from .declare import NOT_FINGERPRINTED, Stage

ORDER = ("download", "organize", "ssl-pretrain", "train-baseline", "active-learn", "train-critical",
         "train-ensemble", "train-multiscale", "calibrate", "export", "evaluate")


def _declared(command: str) -> Stage:
    from ..cli import COMMANDS

    stage = importlib.import_module(f"..commands.{COMMANDS[command]}", __package__).STAGE
    if stage.name != command:
        raise RuntimeError(f"commands/{COMMANDS[command]}.py declares stage '{stage.name}', not '{command}'")
    return stage


STAGES: list[Stage] = [_declared(name) for name in ORDER]
STAGE_NAMES = list(ORDER)
# The vendor round trip sits between these two stages.
VENDOR_AFTER = "active-learn"

__all__ = ["NOT_FINGERPRINTED", "ORDER", "STAGES", "STAGE_NAMES", "VENDOR_AFTER", "Stage"]
