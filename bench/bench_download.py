"""FathomNet download throughput: `marauder download` vs fathomnet-py's own `fathomnet-generate`.

Both run as real processes against the same fake FathomNet server (tests/fakes) on loopback with
50 ms of latency added to every request (and, like production servers, no Nagle delay on its
sockets), for the same concepts (Pterois, Strongylocentrotus purpuratus, Haliotis, with
descendants) over a catalogue of 500 real JPEGs. Images/s is counted
over each command's whole wall time (start-up included); each is run `--repeat` times and the
fastest run counts, since the shared host's load varies. Peak memory (max RSS) of `marauder
download` is measured at 100, 500 and 1000 images to show it does not grow with the number of images.

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

from common import SHARED_DATA, precompile_sources, row, write_result  # noqa: E402
from fakes.fathomnet_server import FakeFathomNet, build_catalog, jpeg_sources  # noqa: E402

ROOTS = ["Pterois", "Strongylocentrotus purpuratus", "Haliotis"]
# Peak RSS from VmHWM (kB): ru_maxrss would include the forking parent's (the fake server's) RSS.
_RSS = ("import runpy, sys; sys.argv = sys.argv[1:]; "
        "code = 0\ntry:\n    runpy.run_path(sys.argv[0], run_name='__main__')\nexcept SystemExit as e:\n"
        "    code = e.code or 0\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
        "print('MAXRSS', hwm, file=sys.stderr)\nsys.exit(code)")


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
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement; the fastest counts (noisy host)")
    args = ap.parse_args()
    precompile_sources()
    paths = jpeg_sources(SHARED_DATA if SHARED_DATA.is_dir() else None, None, args.images)
    if len(paths) < args.images:
        from marauder.data.sample import generate_sample

        sample = Path(tempfile.mkdtemp()) / "sample"
        generate_sample(sample, seed=0)
        paths = jpeg_sources(None, sample / "images", args.images)
    catalog = build_catalog(paths)
    n = len(catalog)
    results = {}
    small_n = max(1, n // 5)
    for label, cat in (("small", catalog[:small_n]), ("full", catalog)):
        for tool, fn in (("marauder", _marauder), ("peer", _peer)):
            runs = []
            for _ in range(args.repeat):
                with FakeFathomNet(cat) as server, tempfile.TemporaryDirectory() as tmp:
                    server.faults.latency = args.latency
                    runs.append(fn(server, Path(tmp)))
            results[(tool, label)] = min(runs)  # fastest wall time; RSS of that run
            print(f"{tool:9s} {label:5s}: {results[(tool, label)][2]} images in "
                  f"{results[(tool, label)][0]:.2f} s, max RSS {results[(tool, label)][1] / 2**20:.0f} MB "
                  f"(walls: {', '.join(f'{r[0]:.2f}' for r in runs)})", file=sys.stderr)
    # Memory against the number of images: the same JPEGs listed twice over (new uuids), ours only.
    double = build_catalog((paths * 2)[: 2 * n])
    with FakeFathomNet(double) as server, tempfile.TemporaryDirectory() as tmp:
        server.faults.latency = args.latency
        dw, drss, dn = _marauder(server, Path(tmp))
        print(f"marauder double: {dn} images in {dw:.2f} s, max RSS {drss / 2**20:.0f} MB", file=sys.stderr)
    (ow, orss, on), (pw, prss, pn) = results[("marauder", "full")], results[("peer", "full")]
    (osw, osrss, osn), (psw, _, psn) = results[("marauder", "small")], results[("peer", "small")]
    ours_marginal = (on - osn) / max(ow - osw, 1e-9)
    peer_marginal = (pn - psn) / max(pw - psw, 1e-9)
    load = os.getloadavg()[0]
    rows = [
        row("images_per_second", round(on / ow, 1), round(pn / pw, 1), "fathomnet-generate", "images/s",
            ">= 10x peer", f"{on} vs {pn} images in {ow:.2f} s vs {pw:.2f} s, whole command incl. start-up, "
            f"{args.latency * 1000:.0f} ms latency per request, load average {load:.1f} on {os.cpu_count()} cores"),
        row("marginal_images_per_second", round(ours_marginal, 1), round(peer_marginal, 1), "fathomnet-generate",
            "images/s", ">= 10x peer", f"(images at {n} - images at {small_n}) / (wall at {n} - wall at {small_n}): "
            "start-up and listing excluded"),
        row("peak_rss_mb", round(orss / 2**20, 1), round(prss / 2**20, 1), "fathomnet-generate", "MB",
            "flat in number of images", f"{on} images", higher_is_better=False),
        row("peak_rss_mb_small_run", round(osrss / 2**20, 1), None, None, "MB", "",
            f"{osn} images: compare with peak_rss_mb ({on} images)", higher_is_better=False),
        row("peak_rss_mb_double_run", round(drss / 2**20, 1), None, None, "MB", "",
            f"{dn} images: compare with peak_rss_mb ({on} images); growth "
            f"{(drss - osrss) / max(dn - osn, 1) / 1024:.1f} KB per image (metadata lines, no pixels)",
            higher_is_better=False),
    ]
    write_result("download", "marauder download vs fathomnet-generate against a fake FathomNet with latency", rows,
                 {"latency_s": args.latency, "images": n})


if __name__ == "__main__":
    main()
