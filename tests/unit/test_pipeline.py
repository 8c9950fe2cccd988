"""Pipeline stage selection, fingerprints, state and the vendor pause."""

from __future__ import annotations

import os
import time

import pytest

from marauder.errors import MarauderError
from marauder.pipeline.fingerprint import fingerprint
from marauder.pipeline.runner import select_stages, vendor_round_done
from marauder.pipeline.stages import STAGE_NAMES, STAGES
from marauder.pipeline.state import PipelineState
from marauder.workspace import Workspace


@pytest.mark.parametrize(
    "start, stop, skip, expected",
    [
        (None, None, (), STAGE_NAMES),
        ("calibrate", None, (), ["calibrate", "export", "evaluate"]),
        (None, "organize", (), ["download", "organize"]),
        ("organize", "train-baseline", ("ssl-pretrain",), ["organize", "train-baseline"]),
        ("export", "export", (), ["export"]),
    ],
)
def test_select_stages(start, stop, skip, expected):
    assert [s.name for s in select_stages(start, stop, skip)] == expected


@pytest.mark.parametrize(
    "start, stop, skip, message",
    [
        ("train", None, (), "unknown stage 'train'"),
        (None, None, ("nope",), "unknown stage 'nope'"),
        ("export", "organize", (), "comes after"),
    ],
)
def test_select_stages_rejects(start, stop, skip, message):
    with pytest.raises(MarauderError, match=message):
        select_stages(start, stop, skip)


def test_fingerprint_tracks_config_and_files(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("one")
    base = fingerprint({"s": {"k": 1}}, [tmp_path])
    assert fingerprint({"s": {"k": 1}}, [tmp_path]) == base
    assert fingerprint({"s": {"k": 2}}, [tmp_path]) != base
    f.write_text("three")
    assert fingerprint({"s": {"k": 1}}, [tmp_path]) != base
    assert fingerprint({}, [tmp_path / "missing"]) == fingerprint({}, [tmp_path / "missing"])


def test_state_roundtrip(tmp_path):
    state = PipelineState.load(tmp_path / "state.json")
    state.mark("organize", status="done", fingerprint="abc", seconds=1.5)
    again = PipelineState.load(tmp_path / "state.json")
    assert again.record("organize").status == "done"
    assert again.record("organize").fingerprint == "abc"
    assert again.record("export").status == "pending"


@pytest.mark.parametrize("text", ["{not json", "[]", '{"stages": {"organize": {"colour": "red"}}}'])
def test_corrupt_state_is_a_one_line_error(tmp_path, text):
    (tmp_path / "state.json").write_text(text)
    with pytest.raises(MarauderError, match="not a pipeline state file"):
        PipelineState.load(tmp_path / "state.json")


def test_vendor_round(tmp_path):
    ws = Workspace.at(tmp_path)
    assert vendor_round_done(ws)  # no package sent
    ws.annotation_package.parent.mkdir(parents=True)
    ws.annotation_package.write_bytes(b"zip")
    assert not vendor_round_done(ws)
    ws.annotated_labels.mkdir(parents=True)
    label = ws.annotated_labels / "a.txt"
    label.write_text("0 0.5 0.5 0.1 0.1\n")
    later = time.time() + 5
    os.utime(label, (later, later))
    assert vendor_round_done(ws)


def test_fingerprint_ignores_files_training_rewrites_itself(tmp_path):
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "a.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    base = fingerprint({}, [tmp_path])
    (tmp_path / "labels" / "train.cache").write_bytes(b"ultralytics label cache")
    (tmp_path / ".hidden.tmp").write_text("x")
    assert fingerprint({}, [tmp_path]) == base


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name)
def test_each_stage_declares_every_section_its_command_reads(stage):
    """The fingerprint follows the declaration, so a section read but not declared would let a config
    change go unnoticed (the stage would be skipped as up to date)."""
    import re
    from pathlib import Path

    from marauder.cli import COMMANDS
    from marauder.config import MarauderConfig
    from marauder.pipeline.stages import NOT_FINGERPRINTED

    source = (Path(__file__).resolve().parents[2] / "src" / "marauder" / "commands"
              / f"{COMMANDS[stage.name]}.py").read_text()
    read = {m for m in re.findall(r"\bcfg\.([a-z_]+)", source) if m in MarauderConfig.model_fields}
    assert read - set(NOT_FINGERPRINTED) <= set(stage.sections), f"{stage.name} reads undeclared sections"
    assert set(stage.sections) <= set(MarauderConfig.model_fields)
