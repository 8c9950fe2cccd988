"""Deployment package integrity: a sha256 manifest in `sha256sum` format, checked before running.

`SHA256SUMS` lists every file the export wrote (so `sha256sum -c SHA256SUMS` works on the Jetson
too); engines built later on the device are listed in `engines/SHA256SUMS` by the build script.
"""

from __future__ import annotations

import hashlib
import os

from .errors import PackageError

MANIFEST = "SHA256SUMS"
ENGINE_MANIFEST = os.path.join("engines", "SHA256SUMS")


def sha256_of(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        block = fh.read(chunk)
        while block:
            h.update(block)
            block = fh.read(chunk)
    return h.hexdigest()


def manifest_lines(root, files) -> str:
    """`<sha256>  <relative path>` lines, sorted, for files (relative paths) under root."""
    lines = ["{}  {}".format(sha256_of(os.path.join(root, f)), f.replace(os.sep, "/")) for f in sorted(files)]
    return "\n".join(lines) + "\n"


def write_manifest(root, files, name: str = MANIFEST) -> str:
    path = os.path.join(root, name)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(manifest_lines(root, files))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def read_manifest(path) -> dict:
    entries = {}
    try:
        with open(path, "rb") as fh:
            text = fh.read().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PackageError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); the manifest is "
                           "corrupt") from None
    for lineno, line in enumerate(text.splitlines(True), 1):
        line = line.rstrip("\n")
        if not line.strip():
            continue
        parts = line.split("  ", 1)
        if len(parts) != 2 or len(parts[0]) != 64:
            raise PackageError(f"{path}:{lineno}: not a sha256sum line: {line[:80]!r}")
        entries[parts[1].lstrip("*")] = parts[0]
    return entries


def verify_package(root) -> int:
    """Check every file in SHA256SUMS (and engines/SHA256SUMS when present); returns files checked."""
    root = str(root)
    manifest = os.path.join(root, MANIFEST)
    if not os.path.isfile(manifest):
        raise PackageError(f"{manifest}: missing; this is not a complete deployment package "
                           "(re-run `marauder export --package`)")
    checked, listed = 0, {}
    for name in (MANIFEST, ENGINE_MANIFEST):
        path = os.path.join(root, name)
        if not os.path.isfile(path):
            continue
        base = os.path.dirname(path)
        missing, tampered = [], []
        entries = read_manifest(path)
        if name == MANIFEST:
            listed = entries
        for rel, digest in entries.items():
            target = os.path.join(base, rel)
            if not os.path.isfile(target):
                missing.append(rel)
            elif sha256_of(target) != digest:
                tampered.append(rel)
            checked += 1
        if missing or tampered:
            what = []
            if missing:
                what.append("missing: " + ", ".join(missing))
            if tampered:
                what.append("checksum mismatch (modified or corrupt): " + ", ".join(tampered))
            raise PackageError("{}: package check failed; {}. Copy the package again from the "
                               ".tar.gz".format(path, "; ".join(what)))
    check_coverage(root, listed)
    return checked


def check_coverage(root: str, listed: dict) -> None:
    """What is checked is what runs: the config and every model file it names must be in SHA256SUMS
    (an empty or partial manifest proves nothing), and each model must be the one the config was
    exported with (its onnx_sha256)."""
    from .config import CONFIG_NAME, load_deployment_config

    manifest = os.path.join(root, MANIFEST)
    if not listed:
        raise PackageError(f"{manifest}: lists no files; a package's manifest covers every file the export "
                           "wrote (re-run `marauder export --package`)")
    cfg = load_deployment_config(root)
    required = [CONFIG_NAME, *(m.onnx for m in cfg.models)]
    unlisted = [f for f in required if f not in listed]
    if unlisted:
        raise PackageError(f"{manifest}: does not list {', '.join(unlisted)}, which {CONFIG_NAME} runs; the "
                           "manifest is partial or was edited")
    for m in cfg.models:
        want = m.onnx_sha256
        if want and listed.get(m.onnx) != want:
            raise PackageError(f"{os.path.join(root, m.onnx)}: not the model {CONFIG_NAME} was exported with "
                               f"(onnx_sha256 {want[:12]}..., file {listed.get(m.onnx, '?')[:12]}...)")
