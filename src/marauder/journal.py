"""Several files changed as one step: all of them, or (after a kill) none, or all on the next run.

A `Transaction` collects writes and deletions in memory. `commit()` then
  1. writes its plan (status "staging") to `<workspace>/.marauder/journal/<name>.json`,
  2. stages every new file beside its destination (`.<name>.<txn>.tmp`, same folder: renames are atomic),
  3. marks the plan "committed" (one atomic rewrite: the point of no return),
  4. renames each staged file over its destination and applies the deletions, in plan order,
  5. removes the plan.
`recover(workspace)`, called before anything reads or writes those files, rolls a "staging" plan back
(its staged files are removed; no destination was touched) and a "committed" one forward (a staged
file that is gone was already renamed into place), so a SIGKILL at any point ends, after the rerun,
exactly as an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

from .fsio import atomic_write_json, rename


def journal_dir(workspace_root: Path) -> Path:
    return Path(workspace_root) / ".marauder" / "journal"


class Transaction:
    def __init__(self, workspace_root: Path, name: str):
        self.plan_path = journal_dir(workspace_root) / f"{name}.json"
        self.txn = uuid.uuid4().hex[:12]
        self.writes: dict[Path, bytes] = {}
        self.deletes: list[Path] = []

    def write(self, dest: Path, data: bytes) -> None:
        """Stage `data` for `dest` unless `dest` already holds exactly these bytes."""
        dest = Path(dest)
        if dest.is_file() and not dest.is_symlink() and dest.stat().st_size == len(data) and dest.read_bytes() == data:
            return
        self.writes[dest] = data

    def delete(self, dest: Path) -> None:
        if Path(dest).exists():
            self.deletes.append(Path(dest))

    @property
    def empty(self) -> bool:
        return not self.writes and not self.deletes

    def _staged(self, dest: Path) -> Path:
        return dest.with_name(f".{dest.name}.{self.txn}.tmp")

    def commit(self) -> None:
        if self.empty:
            return
        plan = {"status": "staging",
                "writes": [[str(self._staged(d)), str(d)] for d in self.writes],
                "deletes": [str(d) for d in self.deletes]}
        atomic_write_json(self.plan_path, plan)
        for dest, data in self.writes.items():
            dest.parent.mkdir(parents=True, exist_ok=True)
            with open(self._staged(dest), "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        atomic_write_json(self.plan_path, {**plan, "status": "committed"})
        _apply(self.plan_path, plan)


def _apply(plan_path: Path, plan: dict) -> None:
    for staged, dest in plan["writes"]:
        if os.path.lexists(staged):
            rename(staged, dest)
    for dest in plan["deletes"]:
        Path(dest).unlink(missing_ok=True)
    plan_path.unlink(missing_ok=True)


def recover(workspace_root: Path) -> list[str]:
    """Finish or undo what a killed run left; returns 'rolled forward/back <name>' lines."""
    done = []
    folder = journal_dir(workspace_root)
    for plan_path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            plan = json.loads(plan_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # the plan's own atomic write was cut: nothing was staged yet
            plan_path.unlink(missing_ok=True)
            continue
        if plan.get("status") == "committed":
            _apply(plan_path, plan)
            done.append(f"rolled forward {plan_path.stem}")
        else:
            for staged, _dest in plan.get("writes", []):
                Path(staged).unlink(missing_ok=True)
            plan_path.unlink(missing_ok=True)
            done.append(f"rolled back {plan_path.stem}")
    return done
