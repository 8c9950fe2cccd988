"""replace_file: what a reader sees is the old file or the new one, with a plain open()'s mode, and no
temp file is left behind whether the write succeeds or fails."""

from __future__ import annotations

import os
import stat

import pytest

from marauder import fsio


@pytest.mark.parametrize("data", [b"", b"0 0.5 0.5 0.1 0.1\n", bytearray(b"\xff\xd8" * 40_000),
                                  memoryview(b"label text")], ids=["empty", "label", "image-sized", "view"])
@pytest.mark.parametrize("durable", [True, False])
def test_replace_file_writes_the_bytes_with_the_usual_mode(tmp_path, data, durable):
    target = tmp_path / "a.jpg"
    target.write_bytes(b"old")
    fsio.replace_file(target, data, durable=durable)
    assert target.read_bytes() == bytes(data)
    assert stat.S_IMODE(target.stat().st_mode) == fsio.FILE_MODE
    assert [p.name for p in tmp_path.iterdir()] == ["a.jpg"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temp(tmp_path):
    target = tmp_path / "a.txt"
    target.write_bytes(b"old")
    with pytest.raises(TypeError):
        fsio.replace_file(target, "text, not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_a_temp_name_left_by_another_process_is_skipped(tmp_path, monkeypatch):
    import itertools

    monkeypatch.setattr(fsio, "_temp_numbers", itertools.count(7))
    taken = tmp_path / f".a.txt.{os.getpid()}-7.tmp"
    taken.write_bytes(b"someone else's")
    fd, tmp = fsio.create_temp_sibling(tmp_path / "a.txt")
    os.close(fd)
    assert tmp == str(tmp_path / f".a.txt.{os.getpid()}-8.tmp")
    assert taken.read_bytes() == b"someone else's"
    assert fsio.is_leftover(os.path.basename(tmp))
