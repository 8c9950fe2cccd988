"""`marauder sync` against moto's standalone S3 server on loopback (a separate process)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from fakes.s3_server import MotoS3

from marauder.cli import main

SECRET = "SECRET-must-never-appear-0123456789"
MB = 1 << 20


@pytest.fixture(scope="module")
def s3():
    # Large buffer: moto keeps objects in memory instead of spilling each part to disk (much faster).
    with MotoS3({"MOTO_S3_DEFAULT_KEY_BUFFER_SIZE": str(1 << 30)}) as server:
        yield server


@pytest.fixture
def client(s3, monkeypatch):
    monkeypatch.setenv("DO_SPACES_KEY", "AKIAEXAMPLEKEY")
    monkeypatch.setenv("DO_SPACES_SECRET", SECRET)
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    s3.reset()
    from marauder.data.storage import make_client

    c = make_client(s3.url, "us-east-1")
    c.create_bucket(Bucket="marauder-test")
    return c


def _sync(s3, ws, *args) -> int:
    return main(["sync", *args, "--endpoint-url", s3.url, "--workspace", str(ws), "storage.region=us-east-1"])


def _tree(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_push_pull_skip_unchanged_and_delete_only_when_asked(s3, client, tmp_path, capsys):
    src = tmp_path / "checkpoints"
    (src / "baseline").mkdir(parents=True)
    (src / "baseline" / "best.pt").write_bytes(os.urandom(300_000))
    (src / "baseline" / "last.pt").write_bytes(b"last")
    (src / "notes.txt").write_text("run 1")
    remote = "s3://marauder-test/backups/checkpoints"
    assert _sync(s3, tmp_path, "push", str(src), remote) == 0
    keys = {o["Key"] for o in client.list_objects_v2(Bucket="marauder-test")["Contents"]}
    assert keys == {"backups/checkpoints/baseline/best.pt", "backups/checkpoints/baseline/last.pt",
                    "backups/checkpoints/notes.txt"}

    # Unchanged files are not sent again; a changed one (same size!) is.
    before = {o["Key"]: o["LastModified"] for o in client.list_objects_v2(Bucket="marauder-test")["Contents"]}
    (src / "notes.txt").write_text("run 2")
    (src / "baseline" / "last.pt").unlink()
    capsys.readouterr()
    assert _sync(s3, tmp_path, "push", str(src), remote, "--dry-run", "--delete") == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "would transfer 1 files" in err and "would delete baseline/last.pt" in err
    assert _sync(s3, tmp_path, "push", str(src), remote) == 0
    assert "transferred 1 files" in " ".join(capsys.readouterr().err.split())
    after = {o["Key"]: o for o in client.list_objects_v2(Bucket="marauder-test")["Contents"]}
    assert after["backups/checkpoints/baseline/best.pt"]["LastModified"] == before["backups/checkpoints/baseline/best.pt"]
    assert "backups/checkpoints/baseline/last.pt" in after  # not deleted without --delete
    assert _sync(s3, tmp_path, "push", str(src), remote, "--delete") == 0
    keys = {o["Key"] for o in client.list_objects_v2(Bucket="marauder-test")["Contents"]}
    assert "backups/checkpoints/baseline/last.pt" not in keys

    dst = tmp_path / "restored"
    assert _sync(s3, tmp_path, "pull", str(dst), remote) == 0
    assert _tree(dst) == _tree(src)
    capsys.readouterr()
    assert _sync(s3, tmp_path, "pull", str(dst), remote) == 0
    assert "transferred 0 files" in " ".join(capsys.readouterr().err.split())

    logs = "".join(p.read_text() for p in (tmp_path / "logs").glob("*.log"))
    assert SECRET not in logs and SECRET not in capsys.readouterr().err


def test_single_file_push_with_delete_keeps_neighbours_and_local_is_under_workspace(s3, client, tmp_path):
    """`sync push FILE --delete` has nothing to mirror: other objects under the prefix stay. A
    relative LOCAL resolves under --workspace (like every other command), not the current folder."""
    client.put_object(Bucket="marauder-test", Key="ckpt/other.pt", Body=b"keep me")
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "best.pt").write_bytes(b"best")
    assert _sync(s3, tmp_path, "push", "checkpoints/best.pt", "s3://marauder-test/ckpt", "--delete") == 0
    keys = {o["Key"] for o in client.list_objects_v2(Bucket="marauder-test")["Contents"]}
    assert keys == {"ckpt/other.pt", "ckpt/best.pt"}


def test_partial_downloads_are_never_pushed_and_the_next_pull_removes_them(s3, client, tmp_path):
    """What a killed pull (or a killed atomic write) leaves has our temp names: push skips them, pull cleans."""
    remote = "s3://marauder-test/leftovers"
    client.put_object(Bucket="marauder-test", Key="leftovers/best.pt", Body=b"best weights")
    dst = tmp_path / "restored"
    (dst / "sub").mkdir(parents=True)
    (dst / ".best.pt.1a2b3c4d.part").write_bytes(b"half of the")  # _download's name for a file in flight
    (dst / "sub" / ".notes.txt.x7y8.tmp").write_bytes(b"half")
    (dst / ".stale.old").mkdir()
    (dst / "mine.txt").write_text("a real file")
    assert _sync(s3, tmp_path, "push", str(dst), remote) == 0
    keys = {o["Key"] for o in client.list_objects_v2(Bucket="marauder-test")["Contents"]}
    assert keys == {"leftovers/best.pt", "leftovers/mine.txt"}
    assert _sync(s3, tmp_path, "pull", str(dst), remote) == 0
    assert _tree(dst) == {"best.pt": b"best weights", "mine.txt": b"a real file"}
    assert not any(p.name.startswith(".") for p in dst.rglob("*"))


@pytest.mark.slow
def test_500mb_sparse_file_goes_multipart_without_being_held_in_memory(s3, client, tmp_path):
    """A real `marauder sync push` process: its peak RSS stays far below the file's size."""
    src = tmp_path / "big"
    src.mkdir()
    with open(src / "model.bin", "wb") as fh:
        fh.truncate(500 * MB)  # sparse: no disk blocks, reads as zeros
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent (the pytest worker,
    # which may hold trained models), while VmHWM belongs to the new process image alone. Both in kB.
    code = ("import sys; from marauder.cli import main; rc = main(sys.argv[1:]); "
            "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]; "
            "print('MAXRSS', hwm); sys.exit(rc)")
    cmd = [sys.executable, "-c", code, "sync", "push", str(src), "s3://marauder-test/big", "--endpoint-url", s3.url,
           "--workspace", str(tmp_path), "storage.region=us-east-1", "storage.multipart_chunk_mb=64",
           "storage.max_concurrency=4"]

    r = subprocess.run(cmd, env=os.environ.copy(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    peak, err = int(r.stdout.split("MAXRSS")[1]) * 1024, " ".join(r.stderr.split())
    assert "transferred 1 files (500.0 MB)" in err
    assert peak < 400 * MB, f"peak RSS {peak / MB:.0f} MB for a 500 MB file"
    head = client.head_object(Bucket="marauder-test", Key="big/model.bin")
    assert head["ContentLength"] == 500 * MB and head["ETag"].strip('"').endswith("-8")  # 8 parts of 64 MB
    # Unchanged: recognised from the multipart ETag we recompute locally, not re-sent.
    from marauder.data.storage import Remote, TransferSettings, push

    again = push(client, src, Remote.parse("s3://marauder-test/big"), TransferSettings(64 * MB, 64 * MB, 4))
    assert again.skipped == ["model.bin"] and not again.transferred


@pytest.mark.parametrize("args, env, message", [
    (["push", "LOCAL", "s3://Bad_Bucket/x"], {}, "not an s3://bucket/prefix URL"),
    (["push", "MISSING", "s3://marauder-test/x"], {}, "does not exist"),
    (["pull", "LOCAL", "s3://no-such-bucket/x"], {}, "NoSuchBucket"),
    (["push", "LOCAL", "s3://marauder-test/x"], {"DO_SPACES_SECRET": None}, "set both DO_SPACES_KEY and DO_SPACES_SECRET"),
])
def test_bad_input(s3, client, tmp_path, capsys, monkeypatch, args, env, message):
    for k, v in env.items():
        monkeypatch.delenv(k) if v is None else monkeypatch.setenv(k, v)
    (tmp_path / "LOCAL").mkdir()
    args = [str(tmp_path / a) if a in ("LOCAL", "MISSING") else a for a in args]
    assert _sync(s3, tmp_path, *args) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert message in err and SECRET not in err
