"""`marauder sync`: mirror a local folder to/from S3-compatible storage (DigitalOcean Spaces, AWS S3).

Unchanged files are skipped: same size and same content, checked by the object's ETag (recomputed
locally with the part size we upload with) or, failing that, by the sha256 we store as object
metadata on upload. Large files go multipart, streamed from disk. Nothing is deleted on the other
side unless asked. Credentials come only from the environment (DO_SPACES_KEY / DO_SPACES_SECRET, or
whatever boto3 finds: AWS_* variables, profiles, instance roles) and are never logged.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..errors import MarauderError, mask_url_credentials
from ..fsio import clean_leftovers, is_leftover, rename
from ..log import get_logger, progress

log = get_logger("sync")
SHA_META = "sha256"
MB = 1024 * 1024


class StorageError(MarauderError):
    pass


@dataclass(frozen=True)
class Remote:
    bucket: str
    prefix: str  # no leading/trailing slash; "" for the bucket root

    @classmethod
    def parse(cls, url: str) -> Remote:
        m = re.fullmatch(r"s3://([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(?:/(.*))?", url.strip())
        if not m:
            raise StorageError(f"not an s3://bucket/prefix URL: '{url}' (bucket names are 3-63 characters of "
                               "lower-case letters, digits, dots and hyphens)")
        return cls(m.group(1), (m.group(2) or "").strip("/"))

    def key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


@dataclass(frozen=True)
class TransferSettings:
    multipart_threshold: int = 64 * MB
    chunk_size: int = 64 * MB
    max_concurrency: int = 8


@dataclass
class SyncResult:
    transferred: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    bytes_transferred: int = 0


# -- client ---------------------------------------------------------------------------------
def make_client(endpoint_url: str | None, region: str | None, provider: str = "do_spaces"):
    """An S3 client. DO_SPACES_KEY/DO_SPACES_SECRET win when set; else boto3's own credential chain."""
    import boto3
    from botocore.config import Config

    key, secret = os.environ.get("DO_SPACES_KEY"), os.environ.get("DO_SPACES_SECRET")
    creds = {}
    if key and secret:
        creds = {"aws_access_key_id": key, "aws_secret_access_key": secret}
    elif key or secret:
        raise StorageError("set both DO_SPACES_KEY and DO_SPACES_SECRET (only one is set)")
    session = boto3.session.Session(**creds)
    if session.get_credentials() is None:
        raise StorageError("no storage credentials: export DO_SPACES_KEY and DO_SPACES_SECRET "
                           "(DigitalOcean Spaces) or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    if provider == "s3" and endpoint_url and "digitaloceanspaces" in endpoint_url:
        endpoint_url = None
    config = Config(retries={"max_attempts": 8, "mode": "adaptive"}, connect_timeout=10, read_timeout=60,
                    request_checksum_calculation="when_required", response_checksum_validation="when_required")
    return session.client("s3", endpoint_url=endpoint_url or None, region_name=region or None, config=config)


def _transfer_config(settings: TransferSettings):
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(multipart_threshold=settings.multipart_threshold, multipart_chunksize=settings.chunk_size,
                          max_concurrency=settings.max_concurrency, use_threads=True)


def _explain(exc: Exception, what: str) -> StorageError:
    """A one-line error without credentials in it: none from the environment, none inside a URL."""
    error = _explain_unmasked(exc, mask_url_credentials(what))
    return StorageError(mask_url_credentials(error.message), file=error.file, line=error.line)


def _explain_unmasked(exc: Exception, what: str) -> StorageError:
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return StorageError(f"{what}: {err.get('Code', 'error')} (HTTP {status}) {err.get('Message', '')}".strip())
    if isinstance(exc, EndpointConnectionError):
        return StorageError(f"{what}: cannot reach {exc.kwargs.get('endpoint_url', 'the storage endpoint')}")
    if isinstance(exc, NoCredentialsError):
        return StorageError(f"{what}: no credentials (export DO_SPACES_KEY and DO_SPACES_SECRET)")
    if isinstance(exc, OSError) and exc.strerror:  # local disk: permission denied, disk full, ...
        where = f" ({exc.filename})" if exc.filename else ""
        return StorageError(f"{what}: {exc.strerror}{where}")
    # boto3 wraps upload errors (S3UploadFailedError) with the cause only in the text; keep it, but
    # mask any credential value in case one ever shows up there.
    text = str(exc).strip()
    for var in ("DO_SPACES_KEY", "DO_SPACES_SECRET", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                "AWS_SESSION_TOKEN"):
        if os.environ.get(var):
            text = text.replace(os.environ[var], "***")
    return StorageError(f"{what}: {type(exc).__name__}" + (f": {text}" if text else ""))


# -- checksums ------------------------------------------------------------------------------
@dataclass(frozen=True)
class LocalDigest:
    size: int
    etag: str  # what S3 reports for this file uploaded with our part size
    sha256: str | None = None


def digest(path: Path, settings: TransferSettings, block: int = 8 * MB, with_sha256: bool = False) -> LocalDigest:
    """One streaming pass: the S3 ETag (md5, or md5-of-part-md5s-N) and, when asked, the sha256.
    The sha256 is only needed to upload or when ETags cannot decide, so the common unchanged case
    reads each file once with one hash."""
    size = path.stat().st_size
    sha = hashlib.sha256() if with_sha256 else None
    multipart = size >= settings.multipart_threshold
    part_md5s, part, in_part = [], hashlib.md5(usedforsecurity=False), 0
    with open(path, "rb") as fh:
        while data := fh.read(block):
            if sha is not None:
                sha.update(data)
            view = memoryview(data)
            while view:
                room = settings.chunk_size - in_part if multipart else len(view)
                piece, view = view[:room], view[room:]
                part.update(piece)
                in_part += len(piece)
                if multipart and in_part == settings.chunk_size:
                    part_md5s.append(part.digest())
                    part, in_part = hashlib.md5(usedforsecurity=False), 0
    if multipart:
        if in_part or not part_md5s:
            part_md5s.append(part.digest())
        etag = f"{hashlib.md5(b''.join(part_md5s), usedforsecurity=False).hexdigest()}-{len(part_md5s)}"
    else:
        etag = part.hexdigest()
    return LocalDigest(size, etag, sha.hexdigest() if sha is not None else None)


def sha256_of(path: Path) -> str:
    from ..fsio import sha256_file

    return sha256_file(path, chunk=8 * MB)


# -- listing --------------------------------------------------------------------------------
def list_local(root: Path) -> dict[str, Path]:
    if root.is_file():
        return {root.name: root}
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not is_leftover(d))
        for f in sorted(filenames):
            p = Path(dirpath) / f
            if p.is_file() and not is_leftover(f):  # regular files and links to them; never our temp files
                out[p.relative_to(root).as_posix()] = p
    return out


def list_remote(client, remote: Remote) -> dict[str, dict]:
    """relative key -> {"size", "etag"} for every object under the prefix."""
    out = {}
    prefix = f"{remote.prefix}/" if remote.prefix else ""
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=remote.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                rel = obj["Key"][len(prefix):]
                if rel and not rel.endswith("/"):
                    out[rel] = {"size": obj["Size"], "etag": obj.get("ETag", "").strip('"')}
    except Exception as exc:
        raise _explain(exc, f"listing {remote}") from None
    return out


def _same(client, remote: Remote, rel: str, obj: dict, path: Path, settings: TransferSettings) -> bool:
    """Same size, then same ETag (computed locally), then same sha256 metadata: each step only
    when the cheaper one before it could not decide."""
    if obj["size"] != path.stat().st_size:
        return False
    if obj["etag"] == digest(path, settings).etag:
        return True
    head = client.head_object(Bucket=remote.bucket, Key=remote.key(rel))
    remote_sha = head.get("Metadata", {}).get(SHA_META)
    return remote_sha is not None and remote_sha == sha256_of(path)


# -- push / pull ----------------------------------------------------------------------------
def push(client, local: Path, remote: Remote, settings: TransferSettings, delete: bool = False,
         dry_run: bool = False) -> SyncResult:
    if not local.exists():
        raise StorageError(f"{local} does not exist")
    files = list_local(local)
    existing = list_remote(client, remote)
    cfg = _transfer_config(settings)
    result = SyncResult()
    for rel, path in progress(list(files.items()), f"push -> {remote}"):
        obj = existing.get(rel)
        size = path.stat().st_size
        try:
            if obj is not None and _same(client, remote, rel, obj, path, settings):
                result.skipped.append(rel)
                continue
            if not dry_run:
                client.upload_file(str(path), remote.bucket, remote.key(rel), Config=cfg,
                                   ExtraArgs={"Metadata": {SHA_META: sha256_of(path)}})
        except StorageError:
            raise
        except Exception as exc:
            raise _explain(exc, f"uploading {path} to {remote.key(rel)}") from None
        result.transferred.append(rel)
        result.bytes_transferred += size
    if delete and local.is_dir():  # a single file mirrors nothing: never delete its neighbours
        for rel in sorted(set(existing) - set(files)):
            if not dry_run:
                try:
                    client.delete_object(Bucket=remote.bucket, Key=remote.key(rel))
                except Exception as exc:
                    raise _explain(exc, f"deleting {remote.key(rel)}") from None
            result.deleted.append(rel)
    return result


def pull(client, remote: Remote, local: Path, settings: TransferSettings, delete: bool = False,
         dry_run: bool = False) -> SyncResult:
    objects = list_remote(client, remote)
    if not objects:
        raise StorageError(f"nothing under {remote}")
    cfg = _transfer_config(settings)
    result = SyncResult()
    if not dry_run:
        clean_leftovers(local)  # partial downloads of a killed pull
    for rel, obj in progress(sorted(objects.items()), f"pull <- {remote}"):
        target = local / PurePosixPath(rel)
        if not _inside(local, target):
            raise StorageError(f"refusing key that escapes {local}: {remote.key(rel)}")
        try:
            if target.is_file() and _same(client, remote, rel, obj, target, settings):
                result.skipped.append(rel)
                continue
            if not dry_run:
                _download(client, remote.bucket, remote.key(rel), target, cfg)
        except Exception as exc:
            raise _explain(exc, f"downloading {remote.key(rel)}") from None
        result.transferred.append(rel)
        result.bytes_transferred += obj["size"]
    if delete:
        for rel in sorted(set(list_local(local)) - set(objects)) if local.is_dir() else []:
            if not dry_run:
                (local / rel).unlink()
            result.deleted.append(rel)
    return result


def _download(client, bucket: str, key: str, target: Path, cfg) -> None:
    """To `.<name>.<random>.part` beside the target, then one rename: a kill leaves no half file under
    the real name, and the leftover has a name that push skips and the next pull removes."""
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        with open(part, "wb") as fh:
            client.download_fileobj(bucket, key, fh, Config=cfg)
        rename(part, target)
    except BaseException:
        part.unlink(missing_ok=True)
        raise


def _inside(root: Path, path: Path) -> bool:
    root = root.resolve()
    return os.path.commonpath([root, path.resolve()]) == str(root)
