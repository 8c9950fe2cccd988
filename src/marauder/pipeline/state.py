"""The pipeline's memory between runs: outputs/pipeline/state.json, rewritten atomically."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import MarauderError
from ..fsio import atomic_write_json


@dataclass
class StageRecord:
    status: str = "pending"  # pending | running | done | failed | skipped | paused
    fingerprint: str | None = None
    started: float | None = None
    seconds: float | None = None
    metric: str | None = None


@dataclass
class PipelineState:
    path: Path
    stages: dict[str, StageRecord] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> PipelineState:
        state = cls(path)
        if path.is_file():
            try:
                raw = json.loads(path.read_text())
                state.stages = {k: StageRecord(**v) for k, v in raw.get("stages", {}).items()}
            except (ValueError, TypeError, AttributeError) as exc:
                raise MarauderError(f"not a pipeline state file ({exc}); delete it to start the pipeline "
                                    "afresh (finished stages rerun)", file=str(path)) from None
        return state

    def record(self, name: str) -> StageRecord:
        return self.stages.setdefault(name, StageRecord())

    def mark(self, name: str, **changes) -> None:
        rec = self.record(name)
        for key, value in changes.items():
            setattr(rec, key, value)
        self.save()

    def save(self) -> None:
        atomic_write_json(self.path, {"updated": time.time(),
                                      "stages": {k: asdict(v) for k, v in self.stages.items()}})
