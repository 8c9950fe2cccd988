"""`make demo`: the main job on the embedded synthetic sample, in a throw-away workspace.

Today: sample -> organize -> validate-data. Each step is the real `marauder` command (run in this
process), so the demo exercises exactly what a user types. Re-running reuses what is already there.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, default=Path("demo"), help="demo workspace (default: demo/)")
    parser.add_argument("--config", type=Path, default=REPO / "config" / "sample.yaml")
    args = parser.parse_args(argv)

    from marauder.cli import main as marauder
    from marauder.log import console
    from marauder.workspace import Workspace

    ws = Workspace.at(args.workspace)
    common = ["--workspace", str(ws.root), "--config", str(args.config)]
    steps = []
    if not (ws.fathomnet_images.is_dir() and any(ws.fathomnet_images.iterdir())):
        steps.append(("embedded sample", ["sample", "--into-workspace", *common]))
    else:
        console.print(f"sample already in {ws.fathomnet_dir}; reusing it", highlight=False)
    steps += [
        ("organize into train/val/test", ["organize", *common]),
        ("validate the organised dataset", ["validate-data", *common]),
    ]
    for title, cmd in steps:
        console.rule(f"[bold]{title}[/]  marauder {' '.join(cmd)}")
        start = time.perf_counter()
        rc = marauder(cmd)
        if rc != 0:
            console.print(f"[bold red]demo failed at '{title}' (exit {rc})[/]")
            return rc
        console.print(f"done in {time.perf_counter() - start:.1f} s", highlight=False)

    console.rule("[bold]where things are")
    where = {
        "labelled sample (as if downloaded)": ws.fathomnet_dir,
        "unlabelled pool": ws.marauder_images,
        "organised dataset": ws.organized_dir,
        "dataset.yaml": ws.dataset_yaml,
        "manifest (sha256, split, counts)": ws.organized_dir / "manifest.json",
        "logs": ws.logs_dir,
    }
    for what, path in where.items():
        console.print(f"  {what:36s} {path}", highlight=False)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "src"))
    sys.exit(main())
