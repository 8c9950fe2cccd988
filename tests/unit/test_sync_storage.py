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


@pytest.mark.parametrize("url", ["https://AKIAKEY:s3cr3t@nyc3.example.com", "http://user@127.0.0.1:9000/x"])
def test_credentials_inside_an_endpoint_url_never_reach_a_message(url):
    from botocore.exceptions import EndpointConnectionError

    err = _explain(EndpointConnectionError(endpoint_url=url), f"listing s3://b at {url}")
    assert "s3cr3t" not in str(err) and "AKIAKEY" not in str(err) and "user@" not in str(err)
    assert "***@" in str(err)


@pytest.mark.parametrize(("url", "needle"), [
    ("not a url", "must be an http(s) URL"),
    ("nyc3.digitaloceanspaces.com", "must be an http(s) URL"),
    ("ftp://host", "must be an http(s) URL"),
    ("https://host:notaport", "not a URL"),
    ("https://key:s3cr3t@host", "must not carry credentials"),
])
def test_endpoint_url_that_is_not_a_url_is_a_config_error(tmp_path, url, needle):
    from marauder.config import load_config
    from marauder.errors import ConfigError

    path = tmp_path / "c.yaml"
    path.write_text(f"storage:\n  endpoint_url: '{url}'\n")
    with pytest.raises(ConfigError, match="storage.endpoint_url") as err:
        load_config(path)
    assert needle in str(err.value) and "s3cr3t" not in str(err.value) and f"{path}:2" in str(err.value)


@pytest.mark.parametrize("url", [None, "https://nyc3.digitaloceanspaces.com", "http://127.0.0.1:9000"])
def test_real_endpoints_are_accepted(url):
    from marauder.config.sections.general import StorageConfig

    assert StorageConfig(endpoint_url=url).endpoint_url == url
