"""Cloud service under load, loopback only, bounded in count and time.

A deployment package (yolov8n from its yaml, dynamic batch ONNX, IMGSZ px) is served by
`python -m marauder.serve` in a subprocess; CONCURRENCY clients send REQUESTS real underwater JPEGs
(1024x768) to POST /v1/detect. Measured: throughput, p50/p99 latency, errors (target 0), and the
server's RSS sampled every 50 ms (target flat: the last quarter's peak within 10% of the first's).
Two server settings in the same run: micro-batching on (serve.max_batch 8, 10 ms window) and off
(max_batch 1). Peer: the same runtime in-process (EdgePipeline.predict on the decoded JPEG, one at a
time, no HTTP), so the ratio is what serving over HTTP costs or gains.
Adversarial phase: the same normal traffic with pixel-bomb batches (PNGs of a few kB that declare
6000x6000 pixels each) and slowloris clients mixed in, then a burst of single bombs: targets normal
clients' p99 within 2x of the no-attack run, server peak RSS under 1.5x its idle RSS plus the
decoded-pixel budget, no 5xx but 503.
Then schemathesis fuzzes the live server from its OpenAPI document (bounded examples): target no 5xx.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED_DATA, row, write_result  # noqa: E402

os.environ.setdefault("YOLO_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
KEY = "bench-key-0123456789abcdef"


def build_package(work: Path, imgsz: int) -> Path:
    from ultralytics import YOLO

    from marauder.config.sections.deploy import DeploymentConfig, ExportConfig
    from marauder.engines.ultralytics.export import export_onnx
    from marauder.export.deployment_config import build_deployment_config, choices_from_config
    from marauder.export.package import archive
    from marauder.export.package import build_package as write_package

    pt = work / "yolov8n.pt"
    YOLO("yolov8n.yaml").save(str(pt))
    info = export_onnx(pt, work / "m.onnx", imgsz=imgsz, dynamic=True, batch=8)
    names = info["class_names"]
    choices = choices_from_config(["m"], {"m": 0.25}, {"method": "wbf"}, 0.01, names, 0.25, [])
    config = build_deployment_config(class_names=names, imgsz=imgsz, models=[{"name": "m", "onnx": "models/m.onnx"}],
                                     choices=choices, export_cfg=ExportConfig(dynamic_batch=True, batch=8),
                                     deploy_cfg=DeploymentConfig(), nms_iou=0.6, check_images=[])
    pkg = write_package(work / "nano_deployment", onnx_files={"m": info["path"]}, engine_files={}, config=config,
                        check_images=[])
    return archive(pkg)


def load_images(count: int) -> list[bytes]:
    folder = SHARED_DATA / "underwater-det" / "images"
    paths = sorted(folder.glob("*.jpg"))[:count] if folder.is_dir() else []
    if not paths:
        sys.exit(f"bench_serve_load needs {folder} (the shared real data)")
    return [p.read_bytes() for p in paths]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, package: Path, work: Path, *overrides: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = work / f"server_{self.port}.log"
        env = dict(os.environ, MARAUDER_API_KEYS=KEY, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "marauder.serve", "--workspace", str(work), "--package", str(package),
             "--host", "127.0.0.1", "--port", str(self.port), *overrides],
            stdout=open(self.log, "wb"), stderr=subprocess.STDOUT, env=env, cwd=REPO)

    def wait_ready(self, timeout: float = 120.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"server exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        sys.exit(f"server not ready in {timeout} s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class RssSampler(threading.Thread):
    def __init__(self, pid: int, every: float = 0.05):
        super().__init__(daemon=True)
        import psutil

        self.process, self.every, self.samples, self.stop_event = psutil.Process(pid), every, [], threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.samples.append((time.monotonic(), self.process.memory_info().rss))
            except Exception:  # the process ended
                return
            time.sleep(self.every)


async def load(url: str, images: list[bytes], requests: int, concurrency: int, time_limit: float) -> dict:
    import httpx

    latencies, errors, statuses = [], 0, {}
    next_index = 0
    deadline = time.monotonic() + time_limit

    async def client(http):
        nonlocal next_index, errors
        while next_index < requests and time.monotonic() < deadline:
            i = next_index
            next_index += 1
            t0 = time.perf_counter()
            try:
                r = await http.post("/v1/detect", content=images[i % len(images)],
                                    headers={"Content-Type": "image/jpeg", "X-API-Key": KEY})
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                ok = r.status_code == 200 and "detections" in r.json()
            except httpx.HTTPError as exc:
                statuses[type(exc).__name__] = statuses.get(type(exc).__name__, 0) + 1
                ok = False
            latencies.append(time.perf_counter() - t0)
            errors += not ok

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        start = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
        wall = time.perf_counter() - start
    lat = sorted(latencies)
    return {"done": len(lat), "wall_s": wall, "throughput": len(lat) / wall, "errors": errors,
            "p50_ms": 1000 * lat[len(lat) // 2], "p99_ms": 1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))],
            "statuses": statuses, "timed_out": len(lat) < requests}


def bomb_png(side: int) -> bytes:
    """A valid 1-bit PNG of side x side pixels in a few kB: decoded as BGR it takes 3 * side^2 bytes."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    row_bytes = bytes(1 + (side + 7) // 8)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(row_bytes * side, 9)) + chunk(b"IEND", b""))


async def bomb_batches(url: str, bomb: bytes, per_batch: int, stop: asyncio.Event, statuses: dict) -> None:
    """Batches whose images each pass serve.max_pixels but together declare more than a request may."""
    import httpx

    files = [("images", (f"{i}.png", bomb, "image/png")) for i in range(per_batch)]
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        while not stop.is_set():
            try:
                r = await http.post("/v1/detect/batch", files=files, headers={"X-API-Key": KEY})
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            except httpx.HTTPError as exc:
                statuses[type(exc).__name__] = statuses.get(type(exc).__name__, 0) + 1
            await asyncio.sleep(0.05)


async def slow_client(url: str, stop: asyncio.Event, counts: dict) -> None:
    """Slowloris: request headers that trickle in and never finish; reconnects whenever it is dropped."""
    host, port = url.removeprefix("http://").split(":")
    while not stop.is_set():
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(b"POST /v1/detect HTTP/1.1\r\nHost: x\r\n")
            while not stop.is_set():
                writer.write(b"X-Slow: 1\r\n")
                await writer.drain()
                try:
                    if await asyncio.wait_for(reader.read(1024), 0.5) == b"":
                        counts["dropped"] = counts.get("dropped", 0) + 1
                        break
                except asyncio.TimeoutError:
                    continue
        except (ConnectionError, OSError):
            counts["dropped"] = counts.get("dropped", 0) + 1
        finally:
            writer.close()


async def under_attack(url: str, images: list[bytes], args, bomb: bytes) -> dict:
    stop = asyncio.Event()
    bomb_statuses, slow = {}, {}
    attackers = [asyncio.create_task(bomb_batches(url, bomb, 4, stop, bomb_statuses)),
                 *(asyncio.create_task(slow_client(url, stop, slow)) for _ in range(args.slow_clients))]
    try:
        result = await load(url, images, args.requests, args.concurrency, args.time_limit)
    finally:
        stop.set()
        await asyncio.gather(*attackers, return_exceptions=True)
    result.update(bomb_statuses=bomb_statuses, slow_clients_dropped=slow.get("dropped", 0))
    return result


async def single_bomb_burst(url: str, bomb: bytes, count: int) -> dict:
    """`count` single-image requests at once, each under every per-request limit: the shared budget
    admits what fits and answers the rest 503 + Retry-After before decoding them."""
    import httpx

    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        responses = await asyncio.gather(*(http.post("/v1/detect", content=bomb, headers={
            "Content-Type": "image/png", "X-API-Key": KEY}) for _ in range(count)))
    statuses = {}
    for r in responses:
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
    return {"statuses": statuses}


def run_attack(package: Path, work: Path, images: list[bytes], args) -> dict:
    """The normal load with pixel-bomb batches and slow clients mixed in, then a burst of single bombs;
    RSS against the idle server's plus the configured decoded-pixel budget in bytes (BYTES_PER_PIXEL)."""
    server = Server(package, work, f"serve.threads={args.threads}", "serve.max_batch=1", "serve.batch_window_ms=0",
                    f"serve.max_pixels={args.bomb_side ** 2}", f"serve.max_request_pixels={args.bomb_side ** 2}",
                    f"serve.max_inflight_pixels={args.inflight_pixels}", "serve.header_timeout_s=2")
    bomb = bomb_png(args.bomb_side)
    try:
        server.wait_ready()
        sampler = RssSampler(server.proc.pid)
        sampler.start()
        time.sleep(1.0)
        idle = max(r for _, r in sampler.samples)
        result = asyncio.run(under_attack(server.url, images, args, bomb))
        result["burst"] = asyncio.run(single_bomb_burst(server.url, bomb, args.burst))
        sampler.stop_event.set()
        sampler.join()
        log = server.log.read_text()
    finally:
        server.stop()
    peak = max(r for _, r in sampler.samples)
    from marauder.serve.budget import BYTES_PER_PIXEL

    budget = BYTES_PER_PIXEL * args.inflight_pixels
    result.update(idle_rss_mb=idle / 2**20, peak_rss_mb=peak / 2**20, budget_mb=budget / 2**20,
                  rss_bound_mb=(1.5 * idle + budget) / 2**20, server_tracebacks=log.count("Traceback"),
                  bomb_bytes=len(bomb))
    return result


def server_errors(statuses: dict) -> int:
    return sum(n for code, n in statuses.items() if isinstance(code, int) and code >= 500 and code != 503)


def run_load(package: Path, work: Path, images: list[bytes], args, *overrides: str) -> dict:
    import httpx

    server = Server(package, work, f"serve.threads={args.threads}", *overrides)
    try:
        server.wait_ready()
        sampler = RssSampler(server.proc.pid)
        sampler.start()
        result = asyncio.run(load(server.url, images, args.requests, args.concurrency, args.time_limit))
        sampler.stop_event.set()
        sampler.join()
        metrics = httpx.get(server.url + "/metrics", headers={"X-API-Key": KEY}).text
    finally:
        server.stop()
    rss = [r for _, r in sampler.samples]
    quarter = max(1, len(rss) // 4)
    first, last = max(rss[:quarter]), max(rss[-quarter:])
    values = {line.split(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
              if line.startswith("marauder_inference_batch_size_")}
    count = values.get("marauder_inference_batch_size_count", 0.0)
    result.update(rss_first_quarter_mb=first / 2**20, rss_last_quarter_mb=last / 2**20, rss_peak_mb=max(rss) / 2**20,
                  rss_growth=last / first,
                  mean_batch=round(values["marauder_inference_batch_size_sum"] / count, 2) if count else None)
    return result


def in_process(package: Path, images: list[bytes], count: int, threads: int) -> dict:
    import cv2

    from marauder.serve.package import load_package

    pipeline = load_package(package, backend="onnx", threads=threads).pipeline
    pipeline.predict([cv2.imdecode(np.frombuffer(images[0], np.uint8), cv2.IMREAD_COLOR)])
    times = []
    for i in range(count):
        t0 = time.perf_counter()
        pipeline.predict([cv2.imdecode(np.frombuffer(images[i % len(images)], np.uint8), cv2.IMREAD_COLOR)])
        times.append(time.perf_counter() - t0)
    return {"throughput": len(times) / sum(times), "p50_ms": 1000 * statistics.median(times)}


def schemathesis(package: Path, work: Path, max_examples: int) -> dict:
    exe = Path(sys.executable).with_name("schemathesis")
    if not exe.is_file():
        return {"ran": False, "note": "schemathesis is not installed"}
    server = Server(package, work, "serve.max_body_mb=1")
    try:
        server.wait_ready()
        t0 = time.perf_counter()
        run = subprocess.run([str(exe), "run", server.url + "/openapi.json", "-H", f"X-API-Key: {KEY}",
                              "--checks", "not_a_server_error", "--max-examples", str(max_examples),
                              "--phases", "examples,coverage,fuzzing", "--seed", "1", "--workers", "1",
                              "--max-time", "60", "--request-timeout", "30", "--no-color"],
                             capture_output=True, text=True, timeout=240, cwd=work)
        seconds = time.perf_counter() - t0
    finally:
        server.stop()
    tail = run.stdout.strip().splitlines()[-12:]
    server_errors = server.log.read_text().count("Traceback")
    return {"ran": True, "exit_code": run.returncode, "seconds": seconds, "summary": tail,
            "server_tracebacks": server_errors}


def say(what: str) -> None:
    print(f"[bench_serve_load {time.strftime('%H:%M:%S')}] {what}", file=sys.stderr, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=240)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--time-limit", type=float, default=90.0, help="per load phase, seconds")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads, server and peer alike")
    parser.add_argument("--max-examples", type=int, default=10, help="schemathesis examples per operation")
    parser.add_argument("--bomb-side", type=int, default=6000, help="pixel-bomb side: 6000 = 108 MB decoded")
    parser.add_argument("--inflight-pixels", type=int, default=80_000_000,
                        help="serve.max_inflight_pixels in the attack phase")
    parser.add_argument("--slow-clients", type=int, default=4)
    parser.add_argument("--burst", type=int, default=6, help="single pixel bombs sent at once")
    args = parser.parse_args()
    images = load_images(16)
    work = Path(tempfile.mkdtemp(prefix="bench_serve_"))
    try:
        package = build_package(work, args.imgsz)
        say("peer: in-process runtime")
        peer = in_process(package, images, min(args.requests, 60), args.threads)
        say(f"load: {args.requests} requests x {args.concurrency} clients, micro-batching on")
        batched = run_load(package, work, images, args, "serve.max_batch=8", "serve.batch_window_ms=10")
        say("load: micro-batching off")
        single = run_load(package, work, images, args, "serve.max_batch=1", "serve.batch_window_ms=0")
        say(f"load under attack: pixel-bomb batches ({args.bomb_side}^2 px each) and {args.slow_clients} slow "
            "clients among the same normal traffic, micro-batching off")
        attacked = run_attack(package, work, images, args)
        say("schemathesis against /openapi.json")
        fuzz = schemathesis(package, work, args.max_examples)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    setup = (f"{args.requests} requests, {args.concurrency} concurrent clients, 1024x768 JPEGs, yolov8n "
             f"{args.imgsz}px dynamic-batch ONNX, ORT threads {args.threads}, loopback")
    rows = [
        row("served throughput (micro-batching on) vs in-process runtime", round(batched["throughput"], 2),
            round(peer["throughput"], 2), "EdgePipeline.predict in-process, one at a time", "images/s", ">= 0.8x",
            f"{setup}; mean batch {batched['mean_batch']}"),
        row("served throughput (micro-batching off) vs in-process runtime", round(single["throughput"], 2),
            round(peer["throughput"], 2), "EdgePipeline.predict in-process, one at a time", "images/s", ">= 0.8x",
            setup),
        row("p50 latency, batching on vs off", round(batched["p50_ms"], 1), round(single["p50_ms"], 1),
            "same server, max_batch 1", "ms", "", setup, higher_is_better=False),
        row("p99 latency, batching on vs off", round(batched["p99_ms"], 1), round(single["p99_ms"], 1),
            "same server, max_batch 1", "ms", "", setup, higher_is_better=False),
        row("errors (batching on / off)", batched["errors"] + single["errors"], None, None, "requests", "0",
            f"statuses on: {batched['statuses']}, off: {single['statuses']}", higher_is_better=False),
        row("server RSS, last quarter peak vs first quarter peak (batching on)",
            round(batched["rss_last_quarter_mb"], 1), round(batched["rss_first_quarter_mb"], 1),
            "same run, first quarter", "MiB", "<= 1.10x (flat)", f"peak {batched['rss_peak_mb']:.1f} MiB",
            higher_is_better=False),
        row("server RSS, last quarter peak vs first quarter peak (batching off)",
            round(single["rss_last_quarter_mb"], 1), round(single["rss_first_quarter_mb"], 1),
            "same run, first quarter", "MiB", "<= 1.10x (flat)", f"peak {single['rss_peak_mb']:.1f} MiB",
            higher_is_better=False),
    ]
    attack_setup = (f"same traffic, server max_batch 1, plus 1 client posting batches of 4 PNGs that declare "
                    f"{args.bomb_side}x{args.bomb_side} px each ({attacked['bomb_bytes'] / 1000:.1f} kB; statuses "
                    f"{attacked['bomb_statuses']}) and {args.slow_clients} slowloris clients (dropped "
                    f"{attacked['slow_clients_dropped']} times); then {args.burst} single bombs at once: statuses "
                    f"{attacked['burst']['statuses']}")
    rows += [
        row("p99 latency of normal clients, under attack vs no attack", round(attacked["p99_ms"], 1),
            round(single["p99_ms"], 1), "same traffic, no attackers (batching off)", "ms", "<= 2x", attack_setup,
            higher_is_better=False),
        row("server peak RSS under attack vs 1.5x idle RSS + decoded-pixel budget", round(attacked["peak_rss_mb"], 1),
            round(attacked["rss_bound_mb"], 1), f"idle {attacked['idle_rss_mb']:.1f} MiB, budget "
            f"{attacked['budget_mb']:.0f} MiB (serve.max_inflight_pixels {args.inflight_pixels})", "MiB", "<= 1.0x",
            attack_setup, higher_is_better=False),
        row("5xx other than 503 under attack (normal, bomb and burst requests)",
            server_errors(attacked["statuses"]) + server_errors(attacked["bomb_statuses"])
            + server_errors(attacked["burst"]["statuses"]), None, None, "requests", "0",
            f"normal clients' statuses {attacked['statuses']}; server tracebacks {attacked['server_tracebacks']}",
            higher_is_better=False),
    ]
    if fuzz["ran"]:
        rows.append(row("schemathesis (not_a_server_error) exit code", fuzz["exit_code"], None, None, "", "0",
                        f"{args.max_examples} examples/operation, {fuzz['seconds']:.0f}s; server tracebacks "
                        f"{fuzz['server_tracebacks']}; " + " | ".join(fuzz["summary"][-4:]), higher_is_better=False))
    write_result("serve_load", "Cloud service under bounded loopback load; schemathesis on its OpenAPI",
                 rows, extra={"batched": batched, "single": single, "peer": peer, "attacked": attacked,
                                "schemathesis": fuzz})
    return 0 if batched["errors"] + single["errors"] + attacked["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
