"""Reading zips and JSON that came from outside (a vendor) without trusting them.

A returned package could hold `../../etc/passwd`-style names (zip slip), absolute paths, symlinks,
or a few KiB that inflate to many GiB (zip bomb). Every entry is checked before anything is read,
and reads are capped while streaming, because the sizes in a zip's directory can lie.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import DataError
from ..fsio import atomic_directory

_CHUNK = 1 << 20


@dataclass(frozen=True)
class ZipLimits:
    max_total_bytes: int = 4 << 30  # sum of uncompressed sizes
    max_files: int = 200_000
    max_ratio: float = 200.0  # uncompressed / compressed, per entry (bomb signature)
    ratio_floor_bytes: int = 1 << 20  # small entries may compress as well as they like


def member_name_problem(name: str) -> str | None:
    """Why an entry name is unsafe to extract, or None when it is fine."""
    if not name or "\x00" in name:
        return "empty name or NUL byte in name"
    posix = name.replace("\\", "/")
    if posix.startswith("/") or (len(posix) > 1 and posix[1] == ":"):
        return "absolute path"
    parts = PurePosixPath(posix).parts
    if any(p == ".." for p in parts):
        return "'..' in path (zip slip)"
    return None


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    mode = info.external_attr >> 16
    return stat.S_ISLNK(mode)


def check_zip(path: str | Path, limits: ZipLimits = ZipLimits()) -> list[zipfile.ZipInfo]:
    """Validate every entry of a zip (names, symlinks, count, sizes, ratios); return the file entries."""
    path = Path(path)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"not a readable zip file ({exc})", file=str(path)) from None
    with zf:
        infos = zf.infolist()
    if len(infos) > limits.max_files:
        raise DataError(f"zip holds {len(infos)} entries, more than the limit of {limits.max_files}",
                        file=str(path))
    total = 0
    seen: set[str] = set()
    files = []
    for info in infos:
        where = f"{path}!{info.filename}"
        problem = member_name_problem(info.filename)
        if problem:
            raise DataError(f"unsafe entry rejected: {problem}", file=where)
        if _is_symlink(info):
            raise DataError("unsafe entry rejected: symbolic link", file=where)
        norm = PurePosixPath(info.filename.replace("\\", "/")).as_posix()
        if norm in seen:
            raise DataError("duplicate entry name", file=where)
        seen.add(norm)
        if info.is_dir():
            continue
        total += info.file_size
        if total > limits.max_total_bytes:
            raise DataError(
                f"uncompressed size exceeds the limit of {limits.max_total_bytes} bytes (zip bomb?)", file=where
            )
        if info.file_size > limits.ratio_floor_bytes and info.file_size > limits.max_ratio * max(
            info.compress_size, 1
        ):
            raise DataError(
                f"compression ratio {info.file_size / max(info.compress_size, 1):.0f}:1 exceeds "
                f"{limits.max_ratio:.0f}:1 (zip bomb?)", file=where,
            )
        files.append(info)
    return files


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, max_bytes: int) -> bytes:
    """Read one entry, stopping as soon as it yields more than it declared or more than `max_bytes`."""
    cap = min(info.file_size, max_bytes)
    out = bytearray()
    with _corrupt_entries_are_data_errors(info.filename), zf.open(info) as fh:
        while block := fh.read(_CHUNK):
            out += block
            if len(out) > cap:
                raise DataError(
                    f"entry inflates past {cap} bytes (declared {info.file_size}; zip bomb?)",
                    file=info.filename,
                )
    return bytes(out)


@contextlib.contextmanager
def _corrupt_entries_are_data_errors(where: str):
    """A damaged entry (bad CRC, broken deflate stream, truncated archive) or one compressed with a method
    Python cannot read is the user's bad input, not a crash."""
    try:
        yield
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:  # last: e.g. Deflate64
        raise DataError(f"corrupt zip entry or unsupported compression ({type(exc).__name__}: {exc})",
                        file=where) from None


def extract_zip(path: str | Path, dest: str | Path, limits: ZipLimits = ZipLimits(),
                replace: bool = False) -> list[Path]:
    """Extract a checked zip into `dest` atomically (all entries or nothing); return the written files."""
    path, dest = Path(path), Path(dest)
    infos = check_zip(path, limits)
    written: list[Path] = []
    budget = limits.max_total_bytes
    with zipfile.ZipFile(path) as zf, atomic_directory(dest, replace=replace) as tmp:
        root = tmp.resolve()
        for info in infos:
            rel = PurePosixPath(info.filename.replace("\\", "/"))
            target = (root / rel).resolve()
            if root not in target.parents:  # belt and braces after the name check
                raise DataError("entry escapes the extraction folder", file=f"{path}!{info.filename}")
            target.parent.mkdir(parents=True, exist_ok=True)
            # O_EXCL|O_NOFOLLOW: never write through a link planted earlier in the same archive
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
            size = 0
            with _corrupt_entries_are_data_errors(f"{path}!{info.filename}"), os.fdopen(fd, "wb") as out, \
                    zf.open(info) as src:
                while block := src.read(_CHUNK):
                    size += len(block)
                    if size > info.file_size or size > budget:
                        raise DataError("entry inflates past its declared size (zip bomb?)",
                                        file=f"{path}!{info.filename}")
                    out.write(block)
            budget -= size
            written.append(dest / rel)
    return written


# Python objects are far larger than their JSON text: `{},` is 3 bytes and a 72-byte dict. Parsing may
# take at most this many times the size limit; COCO written by annotation tools is counted at ~15x
# its size (it takes ~6x: its keys repeat and are shared), a file of empty objects at ~69x (takes 25x).
JSON_MEMORY_FACTOR = 20
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def parsed_size_bound(data: bytes) -> int:
    """An upper bound on what json.loads allocates for `data`, from C-speed counts before parsing:
    72 bytes per object or array, 64 per value (a float, a short string and a list slot), 112 per key
    (a new string and a dict entry with its spare room), plus two copies of the text. Brackets, commas
    and colons inside strings count too, so it only errs high."""
    containers = data.count(b"{") + data.count(b"[")
    return 72 * containers + 64 * (data.count(b",") + containers) + 112 * data.count(b":") + 2 * len(data)


def parse_json_bytes(data: bytes, source: str, max_bytes: int):
    """Parse JSON of at most `max_bytes`; bad UTF-8 or syntax is an error naming `source`.

    NaN/Infinity literals parse (as floats) so the schema check can name the item that holds them.
    """
    if len(data) > max_bytes:
        raise DataError(f"JSON is {len(data)} bytes, more than the limit of {max_bytes}", file=source)
    if (need := parsed_size_bound(data)) > JSON_MEMORY_FACTOR * max_bytes:
        raise DataError(f"JSON would take up to {need / 2**20:.0f} MB of memory to parse ({len(data)} bytes of "
                        f"mostly tiny values); the limit is {JSON_MEMORY_FACTOR} x the size limit "
                        f"({JSON_MEMORY_FACTOR * max_bytes / 2**20:.0f} MB: active_learning.max_json_mb)", file=source)
    try:
        doc = json.loads(data.decode("utf-8-sig"))
        if _SURROGATE_ESCAPE.search(data):  # "\ud800" escapes decode to lone surrogates, which no report
            json.dumps(doc, ensure_ascii=False).encode("utf-8")  # or label file can be written with
        return doc
    except UnicodeEncodeError as exc:
        raise DataError(f"holds text that is not valid Unicode (a lone surrogate escape such as "
                        f"\\u{ord(exc.object[exc.start]):04x})", file=source) from None
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=source) from None
    except json.JSONDecodeError as exc:
        raise DataError(f"not valid JSON: {exc.msg} (column {exc.colno})", file=source, line=exc.lineno) from None
    except ValueError as exc:  # an integer past Python's digit limit
        raise DataError(f"a number cannot be read: {exc}", file=source) from None
    except RecursionError:
        raise DataError("JSON nested too deeply", file=source) from None


def load_json_file(path: str | Path, max_bytes: int):
    """Read a JSON file no larger than `max_bytes` (checked before reading it)."""
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", file=str(path))
    size = path.stat().st_size
    if size > max_bytes:
        raise DataError(f"JSON is {size} bytes, more than the limit of {max_bytes}", file=str(path))
    return parse_json_bytes(path.read_bytes(), str(path), max_bytes)


def is_finite_number(value) -> bool:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value) and math.isfinite(float(value))  # 10**400 is an int no float can hold
    except OverflowError:
        return False
