"""Zips and JSON from outside: zip slip, symlinks, bombs, count/size limits, JSON limits."""

from __future__ import annotations

import stat
import zipfile

import pytest

from marauder.active.safezip import (
    ZipLimits,
    check_zip,
    extract_zip,
    load_json_file,
    member_name_problem,
    parse_json_bytes,
    read_member,
)
from marauder.errors import DataError


def make_zip(path, entries, compression=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in entries:
            if isinstance(name, zipfile.ZipInfo):
                zf.writestr(name, data)
            else:
                zf.writestr(name, data)
    return path


@pytest.mark.parametrize("name, problem", [
    ("images/a.jpg", None),
    ("a/b/c.json", None),
    ("../evil.txt", "zip slip"),
    ("images/../../evil.txt", "zip slip"),
    ("..\\..\\evil.txt", "zip slip"),
    ("/etc/passwd", "absolute"),
    ("\\windows\\system32", "absolute"),
    ("C:/evil.txt", "absolute"),
    ("", "empty"),
    ("a\x00b", "NUL"),
])
def test_member_names(name, problem):
    found = member_name_problem(name)
    assert (found is None) if problem is None else (problem in found)


@pytest.mark.parametrize("bad", ["../escape.txt", "/abs.txt", "sub/../../escape.txt"])
def test_zip_slip_rejected_and_nothing_extracted(tmp_path, bad):
    z = make_zip(tmp_path / "in.zip", [("ok.txt", b"fine"), (bad, b"owned")])
    dest = tmp_path / "out"
    with pytest.raises(DataError, match="unsafe entry rejected") as err:
        extract_zip(z, dest)
    assert bad in str(err.value)
    assert not dest.exists() and not (tmp_path / "escape.txt").exists() and not (tmp_path / "abs.txt").exists()


def test_symlink_entry_rejected(tmp_path):
    info = zipfile.ZipInfo("link")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    z = make_zip(tmp_path / "in.zip", [(info, "/etc/passwd")])
    with pytest.raises(DataError, match="symbolic link"):
        check_zip(z)


def test_bomb_ratio_rejected(tmp_path):
    z = make_zip(tmp_path / "bomb.zip", [("zeros.bin", b"\0" * (8 << 20))])  # 8 MiB -> ~8 KiB
    with pytest.raises(DataError, match=r"compression ratio 1\d{3}:1 exceeds 100:1 \(zip bomb\?\)"):
        check_zip(z, ZipLimits(max_ratio=100))


def test_total_size_limit(tmp_path):
    z = make_zip(tmp_path / "big.zip", [(f"f{i}.bin", bytes(range(256)) * 40) for i in range(5)],
                 compression=zipfile.ZIP_STORED)
    check_zip(z, ZipLimits(max_total_bytes=5 * 10240))
    with pytest.raises(DataError, match="exceeds the limit of 40000 bytes"):
        check_zip(z, ZipLimits(max_total_bytes=40000))


def test_file_count_limit(tmp_path):
    z = make_zip(tmp_path / "many.zip", [(f"f{i}.txt", b"x") for i in range(11)])
    check_zip(z, ZipLimits(max_files=11))
    with pytest.raises(DataError, match="11 entries, more than the limit of 10"):
        check_zip(z, ZipLimits(max_files=10))


def test_duplicate_names_rejected(tmp_path):
    z = tmp_path / "dup.zip"
    with zipfile.ZipFile(z, "w") as zf, pytest.warns(UserWarning):
        zf.writestr("a.txt", b"1")
        zf.writestr("a.txt", b"2")
    with pytest.raises(DataError, match="duplicate entry name"):
        check_zip(z)


def test_not_a_zip(tmp_path):
    p = tmp_path / "x.zip"
    p.write_bytes(b"PK not really")
    with pytest.raises(DataError, match="not a readable zip"):
        check_zip(p)


def test_read_member_stops_at_cap(tmp_path):
    z = make_zip(tmp_path / "a.zip", [("a.bin", b"a" * 5000)])
    with zipfile.ZipFile(z) as zf:
        info = zf.getinfo("a.bin")
        assert read_member(zf, info, 5000) == b"a" * 5000
        with pytest.raises(DataError, match="inflates past 100 bytes"):
            read_member(zf, info, 100)


def test_lying_size_header_is_caught_while_streaming(tmp_path):
    """A central directory that under-states an entry's size cannot smuggle more bytes out."""
    z = make_zip(tmp_path / "liar.zip", [("a.bin", b"a" * 4096)], compression=zipfile.ZIP_STORED)
    with zipfile.ZipFile(z) as zf:
        info = zf.getinfo("a.bin")
        info.file_size = 100  # what a crafted header would claim
        with pytest.raises((DataError, zipfile.BadZipFile)):
            read_member(zf, info, 10_000)


def test_extract_good_zip_atomically(tmp_path):
    z = make_zip(tmp_path / "ok.zip", [("a/b.txt", b"hello"), ("c.json", b"{}")])
    written = extract_zip(z, tmp_path / "out")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in written) == ["a/b.txt", "c.json"]
    assert (tmp_path / "out" / "a" / "b.txt").read_bytes() == b"hello"


@pytest.mark.parametrize("text, message", [
    (b"{", "not valid JSON"),
    (b"\xff\xfe", "not UTF-8"),
    (b"[" * 100000 + b"]" * 100000, "nested too deeply|not valid JSON"),
])
def test_bad_json(text, message):
    with pytest.raises(DataError, match=message):
        parse_json_bytes(text, "vendor.json", 1 << 30)


def test_json_size_limit_checked_before_reading(tmp_path):
    p = tmp_path / "a.json"
    p.write_text('{"images": []}' + " " * 200)
    assert load_json_file(p, 1000) == {"images": []}
    with pytest.raises(DataError, match="more than the limit of 100") as err:
        load_json_file(p, 100)
    assert str(p) in str(err.value)


def _coco(n: int, *, polygons: bool = False) -> bytes:
    seg = ', "segmentation": [[10.5, 20.25, 30.5, 20.25, 30.5, 40.75, 10.5, 40.75]]' if polygons else ""
    anns = ", ".join(f'{{"id": {i}, "image_id": {i % 50 + 1}, "category_id": 3, "bbox": [12.5, 40.25, 30.0, '
                     f'22.75], "area": 682.5, "iscrowd": 0{seg}}}' for i in range(n))
    images = ", ".join(f'{{"id": {i + 1}, "file_name": "images/f{i}.jpg", "width": 1920, "height": 1080}}'
                       for i in range(50))
    return f'{{"images": [{images}], "annotations": [{anns}], "categories": [{{"id": 3, "name": "a"}}]}}'.encode()


@pytest.mark.parametrize("kind, accepted", [
    ("coco", True),
    ("coco with polygons", True),
    ("empty objects", False),  # [{}, {}, ...]: 3 bytes each, 72 in memory
    ("empty arrays", False),
    ("nested pairs", False),  # [[0], [0], ...]
    ("unique keys", True),  # {"k0": 0, ...}: counted high enough (a key costs a string and a dict entry)
])
def test_json_whose_parse_would_dwarf_its_size_is_refused_before_parsing(kind, accepted):
    """max_json_mb bounds memory too: at most JSON_MEMORY_FACTOR x the limit, checked by counting."""
    import tracemalloc

    from marauder.active.safezip import JSON_MEMORY_FACTOR, parsed_size_bound

    n = 100_000
    data = {"coco": _coco(n // 10), "coco with polygons": _coco(n // 10, polygons=True),
            "empty objects": b"[" + b"{}," * n + b"{}]", "empty arrays": b"[" + b"[]," * n + b"[]]",
            "nested pairs": b"[" + b"[0]," * n + b"[0]]",
            "unique keys": b"{" + b",".join(b'"k%d":0' % i for i in range(n)) + b"}"}[kind]
    tracemalloc.start()
    try:
        if accepted:
            parse_json_bytes(data, "vendor.json", len(data))
        else:
            with pytest.raises(DataError, match=r"memory to parse .* active_learning.max_json_mb"):
                parse_json_bytes(data, "vendor.json", len(data))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= parsed_size_bound(data)  # the bound holds where we parse
    assert peak <= JSON_MEMORY_FACTOR * len(data) if accepted else peak < 2 * len(data)  # refused: nothing built


def test_nan_parses_so_the_schema_can_name_the_item():
    assert parse_json_bytes(b'{"bbox": [NaN, 1, 2, 3]}', "x", 1000)["bbox"][0] != 0


@pytest.mark.parametrize("package_id, manifest, message", [
    ("../../../tmp/evil", b"image_id,file,width,height,sha256\n", "unsafe package id"),
    ("pkg-ok", b"\xff\xfe not utf-8", "annotation package is damaged"),
])
def test_package_with_unsafe_id_or_bad_manifest_is_refused(tmp_path, package_id, manifest, message):
    from marauder.active.package_reader import read_package

    p = make_zip(tmp_path / "pkg.zip", [
        ("package.json", f'{{"package_id": "{package_id}", "classes": ["fish"]}}'),
        ("annotations.json", '{"images": [], "annotations": [], "categories": []}'),
        ("manifest.csv", manifest),
    ])
    with pytest.raises(DataError, match=message):
        read_package(p)


def test_vendor_package_id_never_becomes_a_path():
    from marauder.active.package_reader import is_safe_package_id

    assert is_safe_package_id("pkg-20260101T000000Z-abcd1234")
    assert is_safe_package_id("critical-review-iter1-0123abcd")
    for bad in ("../x", "a/b", "a\\b", "..", ".hidden", "a..b", "", None, 7, "x" * 200):
        assert not is_safe_package_id(bad), bad


@pytest.mark.parametrize(("text", "message"), [
    (b'{"images": [{"id": ' + b"1" * 5000 + b"}]}", "a number cannot be read"),  # past the digit limit
    (b'{"categories": [{"id": 1, "name": "fish\\ud800"}]}', "not valid Unicode"),  # a lone surrogate
])
def test_json_that_python_parses_but_nothing_can_use_is_one_line(text, message):
    with pytest.raises(DataError, match=message) as err:
        parse_json_bytes(text, "vendor.json", 1 << 30)
    assert "vendor.json" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("value, finite", [(1, True), (1.5, True), (10**400, False), (float("inf"), False),
                                           (True, False), ("3", False)])
def test_numbers_too_large_for_a_float_are_not_finite(value, finite):
    from marauder.active.safezip import is_finite_number

    assert is_finite_number(value) is finite


def _corrupt(path, compression):
    """A zip whose entry's data is damaged after the header: bad CRC (stored) or a broken deflate stream."""
    import random

    noise = bytes(random.Random(0).getrandbits(8) for _ in range(3000)).hex().encode()  # does not compress
    make_zip(path, [("annotations.json", b'{"x": "' + noise + b'"}')], compression=compression)
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("annotations.json")
    start = info.header_offset + 30 + len(info.filename) + 40
    raw[start:start + 8] = b"\x00\xff" * 4
    path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_corrupted_zip_data_is_a_data_error(tmp_path, compression):
    z = _corrupt(tmp_path / "bad.zip", compression)
    with zipfile.ZipFile(z) as zf, pytest.raises(DataError, match="corrupt zip entry"):
        read_member(zf, zf.getinfo("annotations.json"), 1 << 20)
    with pytest.raises(DataError, match="corrupt zip entry"):
        extract_zip(z, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing half-written
