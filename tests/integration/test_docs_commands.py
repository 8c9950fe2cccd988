"""Every shell block in docs/ marked `<!-- runnable -->` runs, in order, on the embedded sample.

Blocks of one document share a fresh workspace (a temp dir with the repo's config/ beside it),
so a later block can use what an earlier one made, exactly as a reader following the page would.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"<!--\s*runnable\s*-->\s*\n```(?:bash|sh|console)\n(.*?)```", re.S)


def runnable_blocks(doc: Path) -> list[str]:
    return [m.group(1) for m in MARKER.finditer(doc.read_text(encoding="utf-8"))]


DOCS = sorted(p for p in (REPO / "docs").glob("*.md") if runnable_blocks(p))


def test_docs_have_runnable_commands():
    assert DOCS, "no docs page marks a runnable block"


@pytest.mark.parametrize("doc", DOCS, ids=[p.name for p in DOCS])
def test_runnable_blocks(doc, tmp_path):
    # the repo's config and the guide's script folders, as in a checkout
    for name in ("config", "training", "evaluation"):
        (tmp_path / name).symlink_to(REPO / name)
    (tmp_path / "data").mkdir()
    for name in ("acquisition", "active_learning"):
        (tmp_path / "data" / name).symlink_to(REPO / "data" / name)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               PYTHONPATH=str(REPO))
    for block in runnable_blocks(doc):
        script = block.replace("python ", f"{sys.executable} ")
        proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"{doc.name} block failed:\n{block}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
