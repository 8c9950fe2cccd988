"""`marauder serve` for real: uvicorn in a subprocess on a loopback port, called over HTTP.

The server serves the .tar.gz of a real deployment package (tiny trained model) through the edge
runtime; its detections must equal the runtime's own on the same images.
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from marauder.serve.keys import hash_key

KEY = "test-key-0123456789abcdef"
RAW_KEY = "second-raw-key-abcdefghijkl"
MAX_BODY = 1 << 20  # serve.max_body_mb=1
MAX_PIXELS = 4_000_000
MAX_REQUEST_PIXELS = 8_000_000
HEADER_TIMEOUT = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(package: Path, workspace: Path, env_keys: str | None, *extra: str):
    port = free_port()
    log = open(workspace / f"server_{port}.log", "wb")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("MARAUDER_API_KEYS", None)
    if env_keys is not None:
        env["MARAUDER_API_KEYS"] = env_keys
    proc = subprocess.Popen(
        [sys.executable, "-m", "marauder.serve", "--workspace", str(workspace), "--package", str(package),
         "--host", "127.0.0.1", "--port", str(port), "serve.max_body_mb=1", f"serve.max_pixels={MAX_PIXELS}",
         f"serve.max_request_pixels={MAX_REQUEST_PIXELS}", "serve.batch_window_ms=50", "serve.threads=1", f"serve.header_timeout_s={HEADER_TIMEOUT}", *extra],
        stdout=log, stderr=subprocess.STDOUT, env=env)
    return proc, f"http://127.0.0.1:{port}", workspace / f"server_{port}.log"


def wait_ready(proc, url: str, log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.terminate()
    pytest.fail(f"server not ready in {timeout} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def server(deployment_package, tmp_path_factory):
    archive = deployment_package.with_name(deployment_package.name + ".tar.gz")
    ws = tmp_path_factory.mktemp("serve_ws")
    proc, url, log = start_server(archive, ws, f"{hash_key(KEY)}, {RAW_KEY}")
    try:
        wait_ready(proc, url, log)
        with httpx.Client(base_url=url, headers={"X-API-Key": KEY}, timeout=60) as client:
            yield client
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    text = log.read_text()
    assert "Traceback" not in text and "ERROR" not in text, text[-3000:]  # no request here is a server error


@pytest.fixture(scope="module")
def images(organized_sample) -> list[Path]:
    return sorted((organized_sample / "images" / "test").glob("*.jpg"))[:4]


@pytest.fixture(scope="module")
def runtime(deployment_package):
    from marauder.runtime.pipeline import EdgePipeline

    return EdgePipeline(deployment_package, backend="onnx", threads=1)


def expected(runtime, path: Path) -> list[dict]:
    return runtime.predict([cv2.imread(str(path))])[0].to_records(runtime.class_names)


def assert_same(got: list[dict], want: list[dict]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g["class_id"] == w["class_id"] and g["class_name"] == w["class_name"]
        assert abs(g["score"] - w["score"]) <= 1e-5
        assert np.abs(np.array(g["box"]) - np.array(w["box"])).max() <= 0.01


def test_detections_equal_the_runtimes(server, runtime, images):
    total = 0
    for path in images:
        r = server.post("/v1/detect", content=path.read_bytes(), headers={"Content-Type": "image/jpeg"})
        assert r.status_code == 200, r.text
        body = r.json()
        h, w = cv2.imread(str(path)).shape[:2]
        assert (body["width"], body["height"]) == (w, h)
        want = expected(runtime, path)
        assert_same(body["detections"], want)
        total += len(want)
    assert total > 0, "the fixture package should detect something on the sample images"
    # the same image as a multipart upload
    r = server.post("/v1/detect", files={"image": ("x.jpg", images[0].read_bytes(), "image/jpeg")})
    assert r.status_code == 200, r.text
    assert_same(r.json()["detections"], expected(runtime, images[0]))


def test_batch_and_concurrent_requests_are_batched_and_correct(server, runtime, images):
    files = [("images", (p.name, p.read_bytes(), "image/jpeg")) for p in images]
    r = server.post("/v1/detect/batch", files=files)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert len(results) == len(images)
    for result, path in zip(results, images):
        assert_same(result["detections"], expected(runtime, path))

    def one(path):
        return server.post("/v1/detect", content=path.read_bytes(), headers={"Content-Type": "image/jpeg"})

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(one, images * 2))
    for resp, path in zip(responses, images * 2):
        assert resp.status_code == 200 and len(resp.json()["detections"]) == len(expected(runtime, path))
    metrics = server.get("/metrics").text
    single = metric(metrics, 'marauder_inference_batch_size_bucket{le="1.0"}')
    batches = metric(metrics, "marauder_inference_batch_size_count")
    assert batches > single, "the four images of one batch request should share a runtime call"


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_api_key_is_required(server):
    url = str(server.base_url)
    jpeg = cv2.imencode(".jpg", np.zeros((32, 32, 3), np.uint8))[1].tobytes()
    headers = {"Content-Type": "image/jpeg"}
    assert httpx.post(url + "/v1/detect", content=jpeg, headers=headers).status_code == 401
    wrong = httpx.post(url + "/v1/detect", content=jpeg, headers={**headers, "X-API-Key": KEY + "x"})
    assert wrong.status_code == 401 and "API key" in wrong.json()["detail"]
    assert httpx.post(url + "/v1/detect", content=jpeg,
                      headers={**headers, "Authorization": f"Bearer {RAW_KEY}"}).status_code == 200
    assert httpx.get(url + "/metrics").status_code == 401
    assert httpx.get(url + "/healthz").json() == {"status": "ok"}


def test_oversize_bodies_get_413(server):
    big = b"\xff\xd8\xff" + bytes(MAX_BODY + 1000)
    r = server.post("/v1/detect", content=big, headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 413 and "serve.max_body_mb" in r.json()["detail"]

    def chunks():  # no Content-Length: the limit applies while the body streams in
        for _ in range(20):
            yield bytes(100_000)

    r = server.post("/v1/detect", content=chunks(), headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 413


def bomb_png(side: int) -> bytes:
    """A valid 1-bit PNG of side x side pixels whose IDAT is a few kB of compressed zeros."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    row = bytes(1 + (side + 7) // 8)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(row * side, 9)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("body,content_type,status,message", [
    (b"hello, not an image", "text/plain", 415, "unsupported content type"),
    (b"hello, not an image", "image/jpeg", 415, "not a JPEG"),
    ("png", "image/jpeg", 415, "content is PNG"),
    ("truncated", "image/jpeg", 400, "truncated"),
    ("bomb", "image/png", 413, "pixels"),
])
def test_bad_images_are_refused(server, images, body, content_type, status, message):
    if body == "png":
        body = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    elif body == "truncated":
        data = images[0].read_bytes()
        body = data[: len(data) * 2 // 3]
    elif body == "bomb":
        body = bomb_png(30_000)  # 900 Mpx claimed in ~100 kB
        assert len(body) < MAX_BODY
    r = server.post("/v1/detect", content=body, headers={"Content-Type": content_type})
    assert r.status_code == status, r.text
    assert message in r.json()["detail"] and "Traceback" not in r.text
    assert server.get("/readyz").status_code == 200


def test_a_batch_of_pixel_bombs_is_refused_from_its_headers(server):
    """Each image is under serve.max_pixels, together they pass serve.max_request_pixels: 413 before any
    decoding, in a response as fast as a refusal (the bombs would take ~0.5 GB decoded)."""
    bomb = bomb_png(1900)  # 3.6 Mpx each, a few kB
    files = [("images", (f"{i}.png", bomb, "image/png")) for i in range(3)]
    started = time.monotonic()
    r = server.post("/v1/detect/batch", files=files)
    assert r.status_code == 413 and "serve.max_request_pixels" in r.json()["detail"], r.text
    assert time.monotonic() - started < 5
    assert metric(server.get("/metrics").text, "marauder_decoded_pixels_in_flight") == 0


def test_a_client_that_leaves_mid_upload_is_a_client_event(server):
    """Not a 500 with a traceback (the fixture checks the log): INFO, and its own metric label."""
    host, port = server.base_url.host, server.base_url.port
    label = 'marauder_http_errors_total{reason="client_disconnect",route="/v1/detect"}'
    before = metric(server.get("/metrics").text, label)
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(f"POST /v1/detect HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\nContent-Type: image/jpeg\r\n"
                     "Content-Length: 500000\r\n\r\n".encode() + b"\xff\xd8\xff" + bytes(20_000))
        time.sleep(0.3)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        text = server.get("/metrics").text
        if metric(text, label) > before:
            break
        time.sleep(0.2)
    assert metric(text, label) == before + 1
    assert metric(text, 'marauder_http_requests_total{method="POST",route="/v1/detect",status="500"}') == 0


def test_metrics_count_requests_and_errors(server, images):
    """Self-contained: under pytest-xdist the module's other tests may run on another worker."""
    for path in (images * 2)[:5]:
        assert server.post("/v1/detect", content=path.read_bytes(), headers={"Content-Type": "image/jpeg"}).status_code == 200
    jpeg = cv2.imencode(".jpg", np.zeros((32, 32, 3), np.uint8))[1].tobytes()
    for _ in range(2):
        assert httpx.post(str(server.base_url) + "/v1/detect", content=jpeg,
                          headers={"Content-Type": "image/jpeg"}).status_code == 401
    server.get("/readyz")
    text = server.get("/metrics").text
    assert metric(text, 'marauder_http_requests_total{method="POST",route="/v1/detect",status="200"}') >= 5
    assert metric(text, 'marauder_http_errors_total{reason="unauthorized",route="/v1/detect"}') >= 2
    assert metric(text, 'marauder_http_request_duration_seconds_count{route="/v1/detect"}') >= 5
    assert metric(text, "marauder_images_total") >= 5
    assert "process_resident_memory_bytes" in text


def test_readyz_and_openapi_describe_the_service(server, runtime):
    info = server.get("/readyz").json()
    assert info["status"] == "ready" and info["backend"] == "onnx"
    assert info["class_names"] == runtime.class_names and info["models"] == ["balanced"]
    assert "CPUExecutionProvider" in info["providers"]
    spec = server.get("/openapi.json").json()
    assert {"/v1/detect", "/v1/detect/batch", "/healthz", "/readyz", "/metrics"} <= set(spec["paths"])
    assert "image/jpeg" in spec["paths"]["/v1/detect"]["post"]["requestBody"]["content"]


def test_serve_refuses_to_start_without_keys_or_package(deployment_package, tmp_path, capsys, monkeypatch):
    from marauder.cli import main

    monkeypatch.delenv("MARAUDER_API_KEYS", raising=False)
    assert main(["serve", "--workspace", str(tmp_path), "--package", str(deployment_package), "--check"]) == 2
    assert "no API keys" in capsys.readouterr().err.replace("\n", " ")
    keys = tmp_path / "keys.txt"
    keys.write_text(f"# ops key\n{hash_key(KEY)}\n")
    assert main(["serve", "--workspace", str(tmp_path), "--check", f"serve.api_keys_file={keys}"]) == 2
    assert "run `marauder export --package` first" in capsys.readouterr().err.replace("\n", " ")
    assert main(["serve", "--workspace", str(tmp_path), "--package", str(deployment_package), "--check",
                 f"serve.api_keys_file={keys}"]) == 0
    assert "backend onnx" in capsys.readouterr().out


def test_schemathesis_finds_no_server_error(server, tmp_path):
    """Property-based requests from the OpenAPI document (bounded: 5 examples per operation).
    Every check but positive_data_acceptance: a schema cannot say 'a decodable image', so random
    bytes declared as binary are rightly refused with 415."""
    exe = Path(sys.executable).with_name("schemathesis")
    if not exe.is_file():
        pytest.skip("schemathesis is not installed")
    checks = ("not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,"
              "response_headers_conformance,negative_data_rejection,missing_required_header,ignored_auth")
    run = subprocess.run([str(exe), "run", f"{server.base_url}/openapi.json", "-H", f"X-API-Key: {KEY}",
                          "--checks", checks, "--max-examples", "5", "--phases", "coverage,fuzzing", "--seed", "1",
                          "--workers", "1", "--no-color", "--request-timeout", "30"],
                         capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-4000:]
    assert "No issues found" in run.stdout


@pytest.mark.parametrize("trickle", [b"", b"GET /healthz HTTP/1.1\r\n", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n"])
def test_slow_or_silent_clients_are_disconnected_and_others_are_served(server, trickle):
    """Slowloris: headers that never complete (or never start) no longer hold a connection."""
    host, port = server.base_url.host, server.base_url.port
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(trickle)
        started = time.monotonic()
        closed = False
        while time.monotonic() - started < 20:
            try:
                sock.sendall(b"X-Slow: 1\r\n" if trickle else b"")  # keep trickling, never finish
                sock.settimeout(0.5)
                if sock.recv(1024) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except OSError:  # reset by the server
                closed = True
                break
        assert closed, "the server kept a connection whose headers never completed"
        assert time.monotonic() - started < 4 * HEADER_TIMEOUT + 2
    assert server.get("/healthz").status_code == 200  # everyone else is still served
