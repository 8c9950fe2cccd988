"""S3 URL parsing and the local ETag/sha256 digest that decides what `marauder sync` skips."""

from __future__ import annotations

import hashlib

import pytest

from marauder.data.storage import MB, Remote, StorageError, TransferSettings, _explain, digest


@pytest.mark.parametrize("url, bucket, prefix", [
    ("s3://marauder", "marauder", ""), ("s3://marauder/", "marauder", ""),
    ("s3://my.bucket-1/a/b/", "my.bucket-1", "a/b"),
])
def test_parse(url, bucket, prefix):
    r = Remote.parse(url)
    assert (r.bucket, r.prefix) == (bucket, prefix)
    assert r.key("x.pt") == (f"{prefix}/x.pt" if prefix else "x.pt")


@pytest.mark.parametrize("url", ["marauder/x", "s3://", "s3://UPPER/x", "s3://ab", "http://b/x"])
def test_parse_rejects(url):
    with pytest.raises(StorageError, match="s3://bucket/prefix"):
        Remote.parse(url)


def test_digest_single_and_multipart_etag(tmp_path):
    data = bytes(range(256)) * (5 * 4096)  # 5 MiB
    p = tmp_path / "f.bin"
    p.write_bytes(data)
    small = digest(p, TransferSettings(multipart_threshold=8 * MB, chunk_size=5 * MB), with_sha256=True)
    assert small.etag == hashlib.md5(data).hexdigest() and small.sha256 == hashlib.sha256(data).hexdigest()
    parts = [data[i: i + 2 * MB] for i in range(0, len(data), 2 * MB)]  # 2 + 2 + 1 MiB
    want = hashlib.md5(b"".join(hashlib.md5(x).digest() for x in parts)).hexdigest() + "-3"
    assert digest(p, TransferSettings(multipart_threshold=1 * MB, chunk_size=2 * MB), block=3 * MB).etag == want


@pytest.mark.parametrize("exc, shown", [
    (PermissionError(13, "Permission denied", "/data/x.pt"), "downloading k: Permission denied (/data/x.pt)"),
    (RuntimeError("Failed to upload: AccessDenied for SECRETVALUE"), "RuntimeError: Failed to upload: AccessDenied for ***"),
])
def test_errors_keep_their_cause_but_never_a_secret(monkeypatch, exc, shown):
    monkeypatch.setenv("DO_SPACES_SECRET", "SECRETVALUE")
    assert shown in str(_explain(exc, "downloading k"))
