"""FathomNet download throughput: `marauder download` vs fathomnet-py's own `fathomnet-generate`.

Both run as real processes against the same fake FathomNet server (tests/fakes) on loopback with
50 ms of latency added to every request, for the same concepts (Pterois, Strongylocentrotus
purpuratus, Haliotis, with descendants) over a catalogue of 500 real JPEGs. Images/s is counted
over each command's whole wall time (start-up included). Peak memory (max RSS) of `marauder
download` is measured at 100 and 500 images to show it does not grow with the number of images.

    .venv/bin/python bench/bench_download.py [--images 500] [--latency 0.05]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tests"))

from common import SHARED_DATA, row, write_result  # noqa: E402
from fakes.fathomnet_server import FakeFathomNet, build_catalog, jpeg_sources  # noqa: E402

ROOTS = ["Pterois", "Strongylocentrotus purpuratus", "Haliotis"]
_RSS = ("import resource, runpy, sys; sys.argv = sys.argv[1:]; "
        "code = 0\ntry:\n    runpy.run_path(sys.argv[0], run_name='__main__')\nexcept SystemExit as e:\n"
        "    code = e.code or 0\nprint('MAXRSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
        "sys.exit(code)")


def _timed(cmd: list[str], env: dict, cwd: Path) -> tuple[float, int, str]:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", _RSS, *cmd], env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    rss_kb = int(r.stderr.rsplit("MAXRSS", 1)[1].split()[0])
    return wall, rss_kb * 1024, r.stderr


def _marauder(server: FakeFathomNet, work: Path) -> tuple[float, int, int]:
    ws = work / "marauder"
    (ws / "config").mkdir(parents=True)
    shutil.copy(REPO / "config" / "training_config.yaml", ws / "config" / "training_config.yaml")
    script = REPO / "data" / "acquisition" / "fathomnet_downloader.py"
    wall, rss, _ = _timed([str(script), "--config", "config/training_config.yaml", "--concepts", *ROOTS,
                           "--limit", "100000"], {**os.environ, **server.env()}, ws)
    return wall, rss, len(list((ws / "data" / "fathomnet" / "images").glob("*.jpg")))


def _peer(server: FakeFathomNet, work: Path) -> tuple[float, int, int]:
    out = work / "peer"
    exe = Path(sys.executable).with_name("fathomnet-generate")
    wall, rss, _ = _timed([str(exe), "-t", "fathomnet", "-c", ",".join(ROOTS), "-f", "yolo", "-o", str(out),
                           "--img-download", str(out / "images")], {**os.environ, **server.env()}, work)
    return wall, rss, len(list((out / "images").glob("*.jpg")))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--latency", type=float, default=0.05)
    args = ap.parse_args()
    paths = jpeg_sources(SHARED_DATA if SHARED_DATA.is_dir() else None, None, args.images)
    if len(paths) < args.images:
        from marauder.data.sample import generate_sample

        sample = Path(tempfile.mkdtemp()) / "sample"
        generate_sample(sample, seed=0)
        paths = jpeg_sources(None, sample / "images", args.images)
    catalog = build_catalog(paths)
    n = len(catalog)
    results = {}
    for label, cat in (("small", catalog[: max(1, n // 5)]), ("full", catalog)):
        with FakeFathomNet(cat) as server, tempfile.TemporaryDirectory() as tmp:
            server.faults.latency = args.latency
            results[label] = {"marauder": _marauder(server, Path(tmp))}
            if label == "full":
                results[label]["peer"] = _peer(server, Path(tmp))
    ours_wall, ours_rss, ours_n = results["full"]["marauder"]
    peer_wall, peer_rss, peer_n = results["full"]["peer"]
    small_wall, small_rss, small_n = results["small"]["marauder"]
    ours_rate, peer_rate = ours_n / ours_wall, peer_n / peer_wall
    rows = [
        row("images_per_second", round(ours_rate, 1), round(peer_rate, 1), "fathomnet-generate", "images/s",
            ">= 10x peer", f"{ours_n} vs {peer_n} images in {ours_wall:.2f} s vs {peer_wall:.2f} s, "
            f"{args.latency * 1000:.0f} ms latency per request, whole command incl. start-up"),
        row("peak_rss_mb", round(ours_rss / 2**20, 1), round(peer_rss / 2**20, 1), "fathomnet-generate", "MB",
            "flat in number of images", f"{ours_n} images", higher_is_better=False),
        row("peak_rss_mb_small_run", round(small_rss / 2**20, 1), None, None, "MB", "",
            f"{small_n} images in {small_wall:.2f} s: compare with peak_rss_mb ({ours_n} images)",
            higher_is_better=False),
    ]
    write_result("download", "marauder download vs fathomnet-generate against a fake FathomNet with latency", rows,
                 {"latency_s": args.latency, "images": n})


if __name__ == "__main__":
    main()
