"""What killed writes leave, and how the next run finishes or undoes it (fsio leftovers, the journal)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from marauder.fsio import KILL_HOOK_ENV, atomic_directory, clean_leftovers, is_leftover
from marauder.journal import Transaction, journal_dir, recover


@pytest.mark.parametrize("name,leftover", [
    (".best.pt.k2j3h4.tmp", True),  # atomic_write_bytes in flight
    (".labels.old", True),  # atomic_directory mid-swap
    (".best.pt.1a2b3c4d.part", True),  # a download in flight
    ("best.pt", False),
    ("notes.tmp", False),  # not hidden: a user's file
    (".gitignore", False),
    (".hidden.txt", False),
])
def test_leftover_names(name, leftover):
    assert is_leftover(name) == leftover


def test_clean_leftovers_removes_temp_files_and_restores_a_half_swapped_folder(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / ".x.txt.abc.tmp").write_text("half")
    (tmp_path / ".report.abc.tmp").mkdir()
    (tmp_path / ".report.abc.tmp" / "r.json").write_text("{}")
    (tmp_path / ".labels.old").mkdir()  # killed between the swap's renames: labels/ is gone
    (tmp_path / ".labels.old" / "a.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (tmp_path / "images").mkdir()
    (tmp_path / ".images.old").mkdir()  # killed after the swap, before the old copy was removed
    (tmp_path / "keep.txt").write_text("keep")
    assert clean_leftovers(tmp_path) == 4
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "a", "images", "keep.txt", "labels", "labels/a.txt"]


def test_atomic_directory_starts_from_the_old_copy_after_a_kill_mid_swap(tmp_path):
    target = tmp_path / "labels"
    old = tmp_path / ".labels.old"
    old.mkdir()
    (old / "a.txt").write_text("earlier")
    with atomic_directory(target, replace=True) as tmp:
        assert target.is_dir() and (target / "a.txt").read_text() == "earlier"  # restored first
        (tmp / "b.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"] and not old.exists()


def test_transaction_writes_only_what_changes_and_applies_in_plan_order(tmp_path):
    (tmp_path / "same.txt").write_text("same")
    (tmp_path / "gone.txt").write_text("bye")
    txn = Transaction(tmp_path, "t")
    txn.write(tmp_path / "same.txt", b"same")
    txn.write(tmp_path / "d" / "new.txt", b"new")
    txn.delete(tmp_path / "gone.txt")
    txn.delete(tmp_path / "never-there.txt")
    assert list(txn.writes) == [tmp_path / "d" / "new.txt"] and txn.deletes == [tmp_path / "gone.txt"]
    txn.commit()
    assert (tmp_path / "d" / "new.txt").read_text() == "new" and not (tmp_path / "gone.txt").exists()
    assert not any(journal_dir(tmp_path).iterdir())
    assert Transaction(tmp_path, "t").empty


KILLED_COMMIT = """
import sys
from pathlib import Path
from marauder.journal import Transaction
root = Path(sys.argv[1])
txn = Transaction(root, "t")
for i in range(4):
    txn.write(root / "out" / f"{i}.txt", f"new {i}".encode())
txn.delete(root / "out" / "old.txt")
txn.commit()
"""


@pytest.mark.parametrize("kill_after", [1, 2, 3, 4, 5, 6, 7])
def test_a_commit_killed_after_any_rename_is_undone_or_finished_by_recover(tmp_path, kill_after):
    """Renames: plan (staging) 1, plan (committed) 2, then the four files 3-6; 7 = not killed."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    (out / "0.txt").write_text("old 0")
    run = subprocess.run([sys.executable, "-c", KILLED_COMMIT, str(tmp_path)],
                         env={**os.environ, KILL_HOOK_ENV: str(kill_after)}, capture_output=True)
    assert run.returncode == (0 if kill_after == 7 else -9), run.stderr.decode()
    lines = recover(tmp_path)
    files = {p.name: p.read_text() for p in out.iterdir()}
    if kill_after == 1:  # only the staging plan existed: nothing of it survives
        assert lines == ["rolled back t"] and files == {"old.txt": "old", "0.txt": "old 0"}
    else:  # committed: every file in place, the deletion done
        assert lines == ([] if kill_after == 7 else ["rolled forward t"])
        assert files == {f"{i}.txt": f"new {i}" for i in range(4)}
    assert not any(journal_dir(tmp_path).iterdir())
    assert recover(tmp_path) == []


def test_an_unreadable_plan_is_dropped(tmp_path):
    folder = journal_dir(tmp_path)
    folder.mkdir(parents=True)
    (folder / "t.json").write_text('{"status": "comm')
    assert recover(tmp_path) == [] and not (folder / "t.json").exists()
