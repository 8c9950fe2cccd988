"""`make demo`: the whole pipeline on the embedded synthetic sample, in a throw-away workspace.

1. `marauder sample --into-workspace`: the labelled sample lands in data/fathomnet/ (as if
   downloaded), its unlabelled pool in data/marauder/images/.
2. `marauder pipeline --skip download`: organize -> ssl-pretrain -> train-baseline -> active-learn,
   then it pauses for the annotation vendor.
3. The vendor is played by the sample's answer key: the boxes it really drew in the pooled images,
   returned as a COCO file and imported with `marauder import-annotations --merge`.
4. `marauder pipeline` again: it goes on with train-critical -> ... -> export -> evaluate.
Every step is the real `marauder` command, run in this process. Rerunning reuses what is done.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")


def simulate_vendor(ws, out: Path) -> Path:
    """Answer the annotation package with the sample's true boxes, as a vendor would (COCO json)."""
    import cv2  # noqa: F401  (keeps numpy/OpenCV import errors obvious here)

    from marauder.formats.yolo import read_labels

    with zipfile.ZipFile(ws.annotation_package) as zf:
        coco = json.loads(zf.read("annotations.json"))
    answer_key = ws.marauder_images.parent / "answer_key"
    annotations = []
    for image in coco["images"]:
        stem = re.sub(r"_[0-9a-f]{10}$", "", Path(image["file_name"]).stem)  # package adds a hash suffix
        w, h = image["width"], image["height"]
        for cls, cx, cy, bw, bh in read_labels(answer_key / f"{stem}.txt"):
            annotations.append({
                "id": len(annotations) + 1, "image_id": image["id"], "category_id": int(cls) + 1,
                "bbox": [(cx - bw / 2) * w, (cy - bh / 2) * h, bw * w, bh * h], "iscrowd": 0,
                "area": bw * w * bh * h,
            })
    vendor = {"info": coco.get("info", {}), "images": coco["images"], "annotations": annotations,
              "categories": coco["categories"]}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(vendor))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, default=Path("demo"), help="demo workspace (default: demo/)")
    parser.add_argument("--config", type=Path, default=REPO / "config" / "sample.yaml")
    args = parser.parse_args(argv)

    from marauder.cli import main as marauder
    from marauder.log import console
    from marauder.pipeline.runner import vendor_round_done
    from marauder.workspace import Workspace

    ws = Workspace.at(args.workspace)
    common = ["--workspace", str(ws.root), "--config", str(args.config.resolve())]
    start = time.perf_counter()

    def step(title: str, cmd: list[str]) -> int:
        console.rule(f"[bold]{title}[/]  marauder {' '.join(cmd)}")
        rc = marauder(cmd)
        if rc != 0:
            console.print(f"[bold red]demo failed at '{title}' (exit {rc})[/]")
        return rc

    if not (ws.fathomnet_images.is_dir() and any(ws.fathomnet_images.iterdir())):
        if rc := step("embedded sample", ["sample", "--into-workspace", *common]):
            return rc
    if rc := step("pipeline (until the vendor step)", ["pipeline", "--skip", "download", *common]):
        return rc
    if ws.annotation_package.exists() and not vendor_round_done(ws):
        vendor_file = simulate_vendor(ws, ws.root / "vendor_returns" / "annotations.json")
        if rc := step("vendor returns labels (simulated from the sample's answer key)",
                      ["import-annotations", str(vendor_file), "--merge", *common]):
            return rc
        if rc := step("pipeline (after annotation)", ["pipeline", "--skip", "download", *common]):
            return rc

    from marauder.pipeline.state import PipelineState

    state = PipelineState.load(ws.outputs("pipeline") / "state.json")
    if state.record("evaluate").status != "done":
        console.print("[bold red]demo did not reach the evaluate stage[/]")
        return 1
    console.rule("[bold]where things are")
    where = {
        "evaluation report": ws.outputs("evaluation") / "pipeline" / "report.html",
        "deployment package": ws.deployment_dir,
        "calibrated pipeline": ws.pipeline_config,
        "organised dataset": ws.dataset_yaml,
        "annotation package": ws.annotation_package,
        "logs": ws.logs_dir,
    }
    for what, path in where.items():
        console.print(f"  {what:22s} {path}", highlight=False)
    console.print(f"demo finished in {time.perf_counter() - start:.0f} s", highlight=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
