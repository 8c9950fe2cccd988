"""Serving parts on tiny literal inputs: API keys, upload checks, micro-batching, and error bodies."""

from __future__ import annotations

import asyncio
import struct
import zlib

import cv2
import numpy as np
import pytest

from marauder.errors import ConfigError
from marauder.runtime.spec import parse_spec
from marauder.serve.images import ImageRejected, decode_image, sniff
from marauder.serve.keys import hash_key, load_keys

KEY = "k" * 20


@pytest.mark.parametrize("env,presented,ok", [
    (hash_key(KEY), KEY, True),
    (KEY, KEY, True),  # a raw key is hashed on load
    (f"{hash_key('another-key-12345678')}, {KEY}", KEY, True),
    (hash_key(KEY), KEY + "x", False),
    (hash_key(KEY), "", False),
    (hash_key(KEY), None, False),
    ("", KEY, False),
])
def test_keys_accept_only_configured_keys(env, presented, ok):
    assert load_keys("KEYS", None, {"KEYS": env}).check(presented) is ok


def test_key_file_with_comments_and_bad_entries(tmp_path):
    good = tmp_path / "keys"
    good.write_text(f"# rotated 2026-01\n{hash_key(KEY)}  # ops\n\n")
    assert len(load_keys("NONE", good, {})) == 1
    for text, message in ((f"sha256:{'z' * 64}\n", "sha256:<64 hex digits>"), ("short\n", "at least 16")):
        bad = tmp_path / "bad"
        bad.write_text(text)
        with pytest.raises(ConfigError, match=message) as err:
            load_keys("NONE", bad, {})
        assert f"{bad}:1" in str(err.value)
    with pytest.raises(ConfigError, match="not found"):
        load_keys("NONE", tmp_path / "missing", {})


def test_a_key_file_saved_with_a_byte_order_mark_still_works(tmp_path):
    path = tmp_path / "keys"
    path.write_bytes("\ufeff".encode() + f"{hash_key(KEY)}\n".encode())
    assert load_keys("NONE", path, {}).check(KEY)
    assert load_keys("KEYS", None, {"KEYS": "\ufeff" + hash_key(KEY)}).check(KEY)


@pytest.mark.parametrize("prefix", ["SHA256:", "Sha256:", "sha-256:", "sha256 :", "sha256=", "SHA_256:"])
def test_near_miss_digest_prefixes_are_refused_naming_the_line(tmp_path, prefix):
    path = tmp_path / "keys"
    path.write_text(f"# ops\n{prefix}{hash_key(KEY)[7:]}\n")
    with pytest.raises(ConfigError, match="prefix must be exactly 'sha256:'") as err:
        load_keys("NONE", path, {})
    assert f"{path}:2" in str(err.value) and "\n" not in str(err.value)


def test_a_key_file_that_is_not_text_is_a_one_line_error(tmp_path):
    path = tmp_path / "keys"
    path.write_bytes(b"\xff\xfe\x00k")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_keys("NONE", path, {})


def jpeg(h=20, w=30) -> bytes:
    return cv2.imencode(".jpg", np.full((h, w, 3), 80, np.uint8))[1].tobytes()


def png_header_only(w, h) -> bytes:
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))


@pytest.mark.parametrize("data,ctype,status,reason", [
    (b"plain text", "text/plain", 415, "unsupported_media_type"),
    (b"plain text", "image/png", 415, "unsupported_media_type"),
    (b"", "image/jpeg", 400, "empty"),
    (jpeg()[:-40], "image/jpeg", 400, "bad_image"),
    (jpeg()[:40], "image/jpeg", 400, "bad_image"),
    (png_header_only(50_000, 50_000), "image/png", 413, "too_many_pixels"),
    (png_header_only(10, 10), "image/png", 400, "bad_image"),  # header but no pixel data
    (jpeg(), "application/octet-stream", 415, "unsupported_media_type"),  # raw bodies must say image/*
])
def test_bad_uploads_are_refused(data, ctype, status, reason):
    with pytest.raises(ImageRejected) as err:
        decode_image(data, ctype, max_pixels=1_000_000)
    assert (err.value.status, err.value.reason) == (status, reason)


def test_good_upload_decodes_like_opencv():
    data = jpeg(21, 33)
    image = decode_image(data, "image/jpeg; charset=binary", max_pixels=1000)
    assert image.shape == (21, 33, 3)
    assert np.array_equal(image, cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))
    assert decode_image(data, "application/octet-stream", 1000, allow_generic=True).shape == (21, 33, 3)
    with pytest.raises(ImageRejected, match="the limit is 100"):
        decode_image(data, "image/jpeg", max_pixels=100)
    assert [sniff(b) for b in (data, png_header_only(1, 1), b"RIFF0000WEBPVP8 ", b"BM..", b"GIF89a")] == [
        "JPEG", "PNG", "WEBP", "BMP", None]


def test_batcher_groups_concurrent_images_and_survives_a_failure():
    from marauder.serve.batcher import MicroBatcher, Overloaded

    calls = []

    def predict(images):
        calls.append(len(images))
        if any(i < 0 for i in images):
            raise RuntimeError("model failed")
        return [i * 10 for i in images]

    async def scenario():
        b = MicroBatcher(predict, max_batch=3, window_s=0.05, max_queue=4)
        await b.start()
        results = await asyncio.gather(*(b.submit(i) for i in range(4)))
        with pytest.raises(RuntimeError):
            await b.submit(-1)
        after = await b.submit(7)
        with pytest.raises(Overloaded):
            await asyncio.gather(*(b.submit(i) for i in range(6)))
        await b.stop()
        return results, after

    results, after = asyncio.run(scenario())
    assert results == [0, 10, 20, 30] and after == 70
    assert calls[:2] == [3, 1]  # four at once with max_batch 3


class FailingPipeline:
    class_names = ["a"]
    config = parse_spec({"class_names": ["a"], "models": [{"name": "m", "onnx": "m.onnx"}], "imgsz": 32})
    backend_kind = "onnx"

    def predict(self, images):
        raise ValueError("secret internal detail /srv/model.onnx")


@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_server_errors_hide_the_traceback():
    from fastapi.testclient import TestClient

    from marauder.config.sections.deploy import ServeConfig
    from marauder.serve.app import create_app

    app = create_app(FailingPipeline(), ServeConfig(require_api_key=False), load_keys("NONE", None, {}))
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.post("/v1/detect", content=jpeg(), headers={"Content-Type": "image/jpeg"})
        assert r.status_code == 500
        assert r.json()["detail"].startswith("internal server error (request ")
        assert "secret" not in r.text and "Traceback" not in r.text
        r = client.post("/v1/detect", files={"file": ("a.txt", b"x", "text/plain")})
        assert r.status_code == 415
        r = client.post("/v1/detect", files={"other": ("../../etc/passwd", jpeg(), "image/jpeg")})
        assert r.status_code == 500  # decoded from memory and run (the failing model), the name never used
        assert 'reason="internal"' in client.get("/metrics").text


@pytest.mark.parametrize("cli,env,expected", [(None, {}, 8080), (None, {"PORT": "9000"}, 9000), (7000, {"PORT": "9000"}, 7000)])
def test_port_comes_from_flag_then_env_then_config(cli, env, expected):
    from marauder.config.sections.deploy import ServeConfig
    from marauder.serve.server import listen_port

    assert listen_port(ServeConfig(), cli, env) == expected
    with pytest.raises(ConfigError, match="PORT"):
        listen_port(ServeConfig(), None, {"PORT": "http"})


def test_hash_key_command(monkeypatch, capsys, tmp_path):
    import io

    from marauder.cli import main

    monkeypatch.setattr("sys.stdin", io.StringIO(KEY + "\n"))
    assert main(["serve", "--workspace", str(tmp_path), "--hash-key"]) == 0
    assert capsys.readouterr().out.strip() == hash_key(KEY)
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["serve", "--workspace", str(tmp_path), "--hash-key"]) == 2


def test_package_archives_are_unpacked_safely(tmp_path):
    import tarfile

    from marauder.errors import MarauderError
    from marauder.serve.package import resolve_package

    def make(name, members):
        path = tmp_path / name
        with tarfile.open(path, "w:gz") as tar:
            for member, data in members:
                src = tmp_path / "payload"
                src.write_bytes(data)
                tar.add(src, arcname=member)
        return path

    good = resolve_package(make("ok.tar.gz", [("nano_deployment/deployment_config.yaml", b"models: []\n")]))
    assert good.name == "nano_deployment" and (good / "deployment_config.yaml").is_file()
    with pytest.raises(MarauderError, match="cannot unpack"):
        resolve_package(make("evil.tar.gz", [("../outside.txt", b"x")]))
    assert not (tmp_path.parent / "outside.txt").exists()
    with pytest.raises(MarauderError, match="no deployment_config.yaml"):
        resolve_package(make("empty.tar.gz", [("readme.txt", b"x")]))
    with pytest.raises(MarauderError, match="run `marauder export --package` first"):
        resolve_package(tmp_path / "missing.tar.gz")


def test_packages_left_unpacked_by_a_killed_server_are_cleaned_at_start(tmp_path):
    """A SIGKILLed server skips its atexit cleanup: the next start removes its folder, not live ones."""
    import os
    import subprocess
    import sys

    from marauder.serve.package import PREFIX, clean_leftovers

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead_pid = int(dead.stdout)
    left = tmp_path / f"{PREFIX}{dead_pid}-abc"
    (left / "nano_deployment").mkdir(parents=True)
    (left / "nano_deployment" / "model.onnx").write_bytes(b"x" * 1000)
    mine = tmp_path / f"{PREFIX}{os.getpid()}-def"
    mine.mkdir()
    other_live = tmp_path / f"{PREFIX}1-ghi"  # pid 1 is alive
    other_live.mkdir()
    unrelated = tmp_path / "marauder-package-notapid"
    unrelated.mkdir()
    assert clean_leftovers(tmp_path) == [left]
    assert not left.exists() and mine.is_dir() and other_live.is_dir() and unrelated.is_dir()


@pytest.mark.parametrize("limit,holds,refused_at", [
    (100, [40, 60], None),  # exactly the limit
    (100, [40, 61], 1),
    (100, [101], 0),
    (100, [0, 100, 0], None),
])
def test_pixel_budget_refuses_past_its_limit_and_releases_on_exit(limit, holds, refused_at):
    from contextlib import ExitStack

    from marauder.serve.budget import BudgetExhausted, PixelBudget

    budget = PixelBudget(limit)
    with ExitStack() as stack:
        for i, pixels in enumerate(holds):
            if i == refused_at:
                with pytest.raises(BudgetExhausted, match="serve.max_inflight_pixels"):
                    stack.enter_context(budget.hold(pixels))
                break
            stack.enter_context(budget.hold(pixels))
        assert budget.in_use == sum(holds[:refused_at] if refused_at is not None else holds)
    assert budget.in_use == 0
    with pytest.raises(RuntimeError), budget.hold(limit):  # an error inside releases too
        raise RuntimeError
    assert budget.in_use == 0


def test_pixel_limits_must_nest():
    from marauder.config.sections.deploy import ServeConfig

    with pytest.raises(ValueError, match="pixel limits must nest"):
        ServeConfig(max_pixels=10, max_request_pixels=5, max_inflight_pixels=20)
    with pytest.raises(ValueError, match="pixel limits must nest"):
        ServeConfig(max_pixels=10, max_request_pixels=30, max_inflight_pixels=20)


class GatedPipeline(FailingPipeline):
    """Holds every batch until `release` is set, so a request can be kept in flight."""

    def __init__(self):
        import threading

        self.entered, self.release = threading.Event(), threading.Event()

    def predict(self, images):
        from marauder.types import Detections

        self.entered.set()
        assert self.release.wait(30)
        return [Detections.empty(im.shape[:2]) for im in images]


@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_decoded_pixels_are_budgeted_per_request_and_across_requests_in_flight():
    """A batch whose headers declare too many pixels is refused before decoding (413); while one request
    holds the shared budget, the next that would pass it gets 503 + Retry-After, and is served after."""
    from concurrent.futures import ThreadPoolExecutor

    from fastapi.testclient import TestClient

    from marauder.config.sections.deploy import ServeConfig
    from marauder.serve.app import create_app

    side = 1000  # 1 Mpx each
    cfg = ServeConfig(require_api_key=False, max_pixels=side * side, max_request_pixels=2 * side * side,
                      max_inflight_pixels=3 * side * side, batch_window_ms=0)
    pipeline = GatedPipeline()
    big = jpeg(side, side)
    parts = [("images", (f"{i}.jpg", big, "image/jpeg")) for i in range(3)]
    app = create_app(pipeline, cfg, load_keys("NONE", None, {}))
    with TestClient(app) as client, ThreadPoolExecutor(2) as pool:
        r = client.post("/v1/detect/batch", files=parts)
        assert r.status_code == 413 and "serve.max_request_pixels" in r.json()["detail"]
        assert not pipeline.entered.is_set()  # refused from the headers: nothing decoded or run

        holding = pool.submit(client.post, "/v1/detect/batch", files=parts[:2])  # 2 Mpx in flight
        assert pipeline.entered.wait(30)
        r = client.post("/v1/detect/batch", files=parts[:2])  # 2 more would make 4 > 3
        assert r.status_code == 503 and r.headers["Retry-After"] == "1"
        assert "serve.max_inflight_pixels" in r.json()["detail"]
        small = pool.submit(client.post, "/v1/detect", content=jpeg(), headers={"Content-Type": "image/jpeg"})
        pipeline.release.set()
        assert holding.result(30).status_code == 200 and small.result(30).status_code == 200  # it fitted
        assert client.post("/v1/detect/batch", files=parts[:2]).status_code == 200
        metrics = client.get("/metrics").text
        assert 'marauder_http_errors_total{reason="pixel_budget",route="/v1/detect/batch"} 1.0' in metrics
        assert "marauder_decoded_pixels_in_flight 0.0" in metrics
