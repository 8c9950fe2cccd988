"""`marauder download` against a real fake-FathomNet HTTP server on loopback, through fathomnet-py."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from fakes.fathomnet_server import FakeFathomNet, build_catalog, jpeg_sources

from marauder.cli import main
from marauder.fsio import sha256_file

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
SCRIPT = REPO / "data" / "acquisition" / "fathomnet_downloader.py"
N_IMAGES = 40  # the catalogue: 20 lionfish (3 concepts), 7 urchin, 13 abalone (2 concepts)
FAST = ["data.fathomnet.backoff_seconds=0.01", "data.fathomnet.max_retries=3"]


@pytest.fixture(scope="module")
def catalog(request):
    paths = jpeg_sources(SHARED if SHARED.is_dir() else None, None, N_IMAGES)
    if len(paths) < N_IMAGES:  # fresh clone without ../shared/data: the embedded sample's JPEGs
        paths = jpeg_sources(None, request.getfixturevalue("sample_dir") / "images", N_IMAGES)
    assert len(paths) == N_IMAGES
    return build_catalog(paths)


@pytest.fixture
def server(catalog, monkeypatch):
    with FakeFathomNet(catalog) as srv:
        for k, v in srv.env().items():
            monkeypatch.setenv(k, v)
        yield srv


def _workspace(tmp: Path) -> Path:
    (tmp / "config").mkdir(parents=True)
    shutil.copy(REPO / "config" / "training_config.yaml", tmp / "config" / "training_config.yaml")
    return tmp


def _download(ws: Path, *args: str) -> int:
    return main(["download", "--workspace", str(ws), *args, *FAST])


def _files(ws: Path) -> dict[str, bytes]:
    root = ws / "data" / "fathomnet"
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _check_consistent(ws: Path, n_expected: int) -> dict:
    root = ws / "data" / "fathomnet"
    meta = json.loads((root / "metadata.json").read_text())
    images = sorted(p.name for p in (root / "images").iterdir())
    assert [p for p in root.rglob(".*")] == [], "temp or journal files left behind"
    assert len(images) == n_expected
    assert [e["file"] for e in meta["images"]] == images
    for e in meta["images"]:
        assert sha256_file(root / "images" / e["file"]) == e["sha256"]
        for key in ("uuid", "url", "width", "height", "depth_m", "latitude", "longitude", "timestamp",
                    "imaging_type", "contributor", "group", "boxes"):
            assert e[key] is not None, key
        rows = (root / "labels" / (Path(e["file"]).stem + ".txt")).read_text().split("\n")[:-1]
        assert len(rows) == sum(b["class_index"] is not None for b in e["boxes"])
        for row in rows:
            cls, *xywh = row.split()
            assert int(cls) in (0, 1, 2) and all(0 <= float(v) <= 1 for v in xywh)
    return meta


@pytest.mark.slow
def test_guide_commands_as_written(server, tmp_path):
    """Both commands of the guide, run as scripts from the workspace like a user would."""
    ws = _workspace(tmp_path)
    env = {**os.environ, **server.env()}
    base = [sys.executable, str(SCRIPT), "--config", "config/training_config.yaml"]
    r = subprocess.run([*base, "--limit", "10", *FAST], cwd=ws, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    meta = _check_consistent(ws, 10 + 7 + 10)
    assert meta["classes"] == ["lionfish", "purple_sea_urchin", "abalone"]
    assert (ws / "data/fathomnet/classes.txt").read_text() == "lionfish\npurple_sea_urchin\nabalone\n"
    assert "FathomNet download" in r.stderr and "Pterois volitans" in r.stderr  # summary + printed resolution

    r = subprocess.run([*base, "--concepts", "Pterois", "Purple sea urchin", "Abalone", "--limit", "500", *FAST],
                       cwd=ws, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    meta = _check_consistent(ws, N_IMAGES)
    asked = {a["asked"]: a for a in meta["asked"]}
    assert asked["Purple sea urchin"]["class"] == "purple_sea_urchin" and asked["Purple sea urchin"]["via"] == "alias"
    assert set(asked["Pterois"]["concepts"]) == {"Pterois", "Pterois volitans", "Pterois miles"}
    assert asked["Abalone"]["concepts"] == ["Haliotis rufescens", "Haliotis corrugata"]
    # Unasked concepts are recorded, with no class, and kept out of the labels.
    sebastes = [b for e in meta["images"] for b in e["boxes"] if b["concept"] == "Sebastes"]
    assert len(sebastes) == N_IMAGES // 5 and all(b["class_index"] is None for b in sebastes)
    # The rerun fetched only the 13 images the first run had not.
    assert len(server.image_requests()) == N_IMAGES


def test_exact_and_filters(server, tmp_path):
    ws = _workspace(tmp_path)
    assert _download(ws, "--concepts", "Pterois", "--exact", "--limit", "50") == 0
    meta = _check_consistent(ws, 6)  # only images labelled "Pterois" itself (every 6th, from index 5)
    assert meta["asked"][0]["concepts"] == ["Pterois"]
    ws2 = _workspace(tmp_path / "filtered")
    assert _download(ws2, "--concepts", "Abalone", "--max-depth", "200", "--start", "2019-01-02") == 0
    meta = json.loads((ws2 / "data/fathomnet/metadata.json").read_text())
    assert meta["images"] and all(e["depth_m"] <= 200 and e["timestamp"] >= "2019-01-02" for e in meta["images"])


def test_faults_are_retried_and_one_bad_image_does_not_stop_the_run(server, catalog, tmp_path):
    ws = _workspace(tmp_path)
    wrong, broken, slow, cut, limited = (c.uuid for c in catalog[:5])
    server.faults.add("status", r"^/api/images/query", times=2, status=500)
    server.faults.add("status", r"^/api/boundingboxes/list/concepts", times=1, status=429, retry_after=0.2)
    server.faults.add("status", rf"/static/images/{limited}", times=2, status=429, retry_after=0.1)
    server.faults.add("status", r"^/static/", times=3, status=503)
    server.faults.add("delay", rf"/static/images/{slow}", times=1, seconds=1.5)
    server.faults.add("truncate", rf"/static/images/{cut}", times=1)
    server.faults.wrong_sha.add(wrong)
    server.faults.undecodable.add(broken)
    t0 = time.monotonic()
    assert _download(ws, "--limit", "500", "data.fathomnet.timeout_seconds=0.5") == 0
    assert time.monotonic() - t0 >= 0.2  # the Retry-After was honoured
    root = ws / "data" / "fathomnet"
    meta = json.loads((root / "metadata.json").read_text())
    assert set(meta["failed"]) == {wrong, broken}
    assert "sha256 mismatch" in meta["failed"][wrong] and "decode" in meta["failed"][broken]
    _check_consistent(ws, N_IMAGES - 2)
    statuses = [s for _, p, s in server.log]
    assert statuses.count(500) == 2 and statuses.count(429) == 3 and statuses.count(503) == 3


@pytest.mark.parametrize(("no_proxy", "proxied"), [("", True), ("127.0.0.1", False)])
def test_proxy_from_the_environment_and_redirects_are_followed(server, tmp_path, monkeypatch, no_proxy, proxied):
    """Behind an institution's proxy: HTTP_PROXY carries the API calls and the image fetches, NO_PROXY
    exempts a host; every image answers with a redirect first (as a CDN may)."""
    from fakes.http_proxy import ForwardingProxy

    server.faults.add("redirect", r"^/static/images/", times=None)
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    with ForwardingProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        if no_proxy:
            monkeypatch.setenv("NO_PROXY", no_proxy)
        ws = _workspace(tmp_path)
        assert _download(ws, "--limit", "500") == 0
    _check_consistent(ws, N_IMAGES)
    statuses = [s for _, p, s in server.log if p.startswith("/static/images/")]
    assert statuses.count(302) == N_IMAGES and statuses.count(200) == N_IMAGES
    images_seen = [u for u in proxy.seen if "/static/images/" in u]
    api_seen = [u for u in proxy.seen if "/api/" in u]
    if proxied:
        assert len(images_seen) == 2 * N_IMAGES and api_seen
    else:
        assert proxy.seen == []


def test_unknown_concept_lists_close_names(server, tmp_path, capsys):
    ws = _workspace(tmp_path)
    assert _download(ws, "--concepts", "Pterois volitanz") == 2
    err = capsys.readouterr().err
    assert "unknown concept 'Pterois volitanz'" in err and "Pterois volitans" in err
    assert not (ws / "data" / "fathomnet" / "images").exists() or not any((ws / "data/fathomnet/images").iterdir())


def test_server_down_gives_url_and_status_and_writes_nothing(server, tmp_path, capsys, monkeypatch):
    ws = _workspace(tmp_path)
    server.faults.add("status", r"^/api/", times=None, status=503)
    assert _download(ws, "data.fathomnet.max_retries=1") == 2
    err = capsys.readouterr().err
    assert "HTTP 503" in err and f"{server.api_url}/boundingboxes/list/concepts" in err
    monkeypatch.setenv("FATHOMNET_API_URL", "http://127.0.0.1:9/api")  # nothing listens on port 9
    assert _download(ws, "data.fathomnet.max_retries=1") == 2
    assert "cannot reach http://127.0.0.1:9/api/" in capsys.readouterr().err
    assert not any((ws / "data/fathomnet/images").iterdir())
    assert not (ws / "data/fathomnet/metadata.json").exists()


@pytest.mark.slow
def test_read_only_output_fails_before_any_download(server, catalog):
    ws = Path(tempfile.mkdtemp(prefix="marauder-ro-"))
    try:
        _workspace(ws)
        os.chmod(ws, 0o777)
        out = ws / "data" / "fathomnet"
        out.mkdir(parents=True)
        os.chmod(ws / "data", 0o755)
        os.chmod(out, 0o555)
        cmd = [sys.executable, "-m", "marauder.cli", "download", "--workspace", str(ws), *FAST]
        if os.geteuid() == 0:  # root ignores permissions: run as nobody
            if not shutil.which("setpriv"):
                pytest.skip("running as root without setpriv: cannot make a folder read-only")
            cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
        r = subprocess.run(cmd, env={**os.environ, **server.env()}, capture_output=True, text=True, timeout=60)
        assert r.returncode == 2, r.stderr
        assert f"output folder {out}/images is not writable" in " ".join(r.stderr.split())
        assert server.log == []
    finally:
        shutil.rmtree(ws)


@pytest.mark.slow
def test_killed_run_resumes_to_identical_files(server, tmp_path):
    """SIGKILL a real downloader mid-run, rerun: same files as an uninterrupted run, nothing left over."""
    reference = _workspace(tmp_path / "reference")
    assert _download(reference, "--limit", "500") == 0
    server.log.clear()

    ws = _workspace(tmp_path / "killed")
    server.faults.latency = 0.03
    cmd = [sys.executable, str(SCRIPT), "--workspace", str(ws), "--limit", "500", "--concurrency", "2", *FAST]
    proc = subprocess.Popen(cmd, env={**os.environ, **server.env()}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    images = ws / "data" / "fathomnet" / "images"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(images.glob("*.jpg"))) < 8:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    on_disk = len(list(images.glob("*.jpg")))
    assert 8 <= on_disk < N_IMAGES, "the kill came too late to test anything"
    journal = ws / "data" / "fathomnet" / ".metadata.journal.jsonl"
    assert len(journal.read_text().splitlines()) >= on_disk - 2  # all but those in flight are recorded

    server.faults.latency = 0.0
    server.log.clear()
    assert _download(ws, "--limit", "500") == 0
    # only what was missing, plus at most the two in flight at the kill (on disk, not yet journalled: refetched)
    assert N_IMAGES - on_disk <= len(server.image_requests()) <= N_IMAGES - on_disk + 2
    _check_consistent(ws, N_IMAGES)
    assert _files(ws) == _files(reference)


@pytest.mark.parametrize("args, message", [
    (["--limit", "0"], "--limit must be >= 1"),
    (["--start", "last tuesday"], "bad filter startTimestamp"),
    (["--concurrency", "0"], "--concurrency must be >= 1"),
    (["data.fathomnet.page_size=0"], "page_size"),
])
def test_bad_arguments_fail_before_any_request(tmp_path, capsys, args, message):
    assert _download(_workspace(tmp_path), *args) == 2
    assert message in capsys.readouterr().err


def test_organizer_splits_by_the_group_key_without_leakage(server, tmp_path):
    from marauder.data.organize import organize_dataset

    ws = _workspace(tmp_path)
    assert _download(ws, "--limit", "500") == 0
    root = ws / "data" / "fathomnet"
    meta = json.loads((root / "metadata.json").read_text())
    out = tmp_path / "organized"
    result = organize_dataset(root / "images", root / "labels", out, split=(0.6, 0.2, 0.2), group_by="meta:group")
    assert result.names == meta["classes"]  # read from data/fathomnet/classes.txt
    group_of = {e["file"]: e["group"] for e in meta["images"]}
    splits = {s: {group_of[p.name] for p in (out / "images" / s).glob("*.jpg")} for s in ("train", "val", "test")}
    assert sum(len(list((out / "images" / s).glob("*.jpg"))) for s in splits) == N_IMAGES
    assert all(splits.values()) and not (splits["train"] & splits["val"] or splits["train"] & splits["test"]
                                         or splits["val"] & splits["test"])
