"""Typed config: every bad input names the file, the line and the key; overrides apply on top."""

from __future__ import annotations

from pathlib import Path

import pytest

from marauder.config import MarauderConfig, dump_config, load_config, parse_override
from marauder.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]

# (name, yaml text, expected line, fragments the message must contain)
BAD_FILES = [
    ("unknown key", "general:\n  seed: 1\n  sede: 2\n", 3, ["unknown key 'general.sede'", "did you mean 'seed'"]),
    ("unknown nested key", "baseline_yolo:\n  epochz: 3\n", 2, ["baseline_yolo.epochz", "did you mean 'epochs'"]),
    ("unknown section", "generl:\n  seed: 1\n", 1, ["unknown key 'generl'", "did you mean 'general'"]),
    ("wrong type", "general:\n  seed: abc\n", 2, ["general.seed", "integer"]),
    ("bad value", "general:\n  imgsz: 100\n", 2, ["general.imgsz", "multiple of 32"]),
    ("split not summing to 1", "data:\n  organize:\n    split: [0.5, 0.2, 0.2]\n", 2,
     ["data.organize", "sum to 1"]),
    ("top level not a mapping", "- a\n", 1, ["top level must be a mapping"]),
    ("broken yaml", "general:\n  seed: [1\n", 3, ["not valid YAML"]),
]


@pytest.mark.parametrize("name,text,line,fragments", BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_bad_config_file_names_file_line_key(tmp_path, name, text, line, fragments):
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    err = info.value
    assert err.file == str(path)
    assert err.line == line
    message = str(err)
    assert message.startswith(f"{path}:{line}: ")
    for fragment in fragments:
        assert fragment in message
    assert "\n" not in message  # one line for the CLI


# (override, expected (section, key) value or error fragment)
OVERRIDES = [
    ("general.seed=5", ("general", "seed", 5), None),
    ("baseline_yolo.epochs=2", ("baseline_yolo", "epochs", 2), None),
    ("general.classes=[a, b]", ("general", "classes", ["a", "b"]), None),
    ("general.sede=5", None, "did you mean 'seed'"),
    ("general.imgsz=33", None, "multiple of 32"),
    ("general.seed=abc", None, "integer"),
    ("seed=1", None, "must name a section and a key"),
]


@pytest.mark.parametrize("text,expected,error", OVERRIDES, ids=[c[0] for c in OVERRIDES])
def test_overrides(text, expected, error):
    if error is None:
        cfg = load_config(None, [text])
        section, key, value = expected
        assert getattr(getattr(cfg, section), key) == value
    else:
        with pytest.raises(ConfigError) as info:
            load_config(None, [text])
        assert error in str(info.value)
        assert f"override '{text}'" in str(info.value)


def test_override_beats_file(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("general:\n  seed: 1\n  imgsz: 64\n")
    cfg = load_config(path, ["general.seed=7"])
    assert (cfg.general.seed, cfg.general.imgsz) == (7, 64)


def test_parse_override_values_are_yaml():
    assert parse_override("a.b=1.5") == (("a", "b"), 1.5)
    assert parse_override("a.b.c=null") == (("a", "b", "c"), None)
    assert parse_override("a.b=true") == (("a", "b"), True)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize("name", ["training_config.yaml", "sample.yaml"])
def test_shipped_configs_are_valid(name):
    cfg = load_config(REPO / "config" / name)
    assert cfg.general.classes


def test_sample_config_matches_sample_classes():
    from marauder.data.sample import SAMPLE_CLASSES

    cfg = load_config(REPO / "config" / "sample.yaml")
    assert tuple(cfg.general.classes) == SAMPLE_CLASSES
    assert set(cfg.critical_species.species) <= set(SAMPLE_CLASSES)


def test_dump_round_trips(tmp_path):
    path = tmp_path / "resolved.yaml"
    path.write_text(dump_config(MarauderConfig()))
    assert load_config(path) == MarauderConfig()


# ---------------------------------------------------------------- hostile files: one line, exit 2, fast
def _bomb(levels: int, width: int = 9) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
    return "\n".join(lines) + f"\ngeneral:\n  classes: *a{levels - 1}\n"


@pytest.mark.parametrize(("text", "needle"), [
    (_bomb(9), "expands to more than"),  # a billion laughs
    (_bomb(5), "expands to more than"),  # a few hundred bytes that already took seconds
    ("general:\n  seed: " + "[" * 3000 + "]" * 3000 + "\n", "nest"),  # libyaml: "exceeded maximum nesting depth"
    ("general:\n  seed: " + "[" * 60 + "]" * 60 + "\n", "nested deeper than 50"),  # our own cap
    ("general:\n  seed: " + "1" * 5000 + "\n", "cannot be read"),  # past Python's int digit limit
    ("general:\n  imgsz: " + "1" * 400 + ".0\n", "general.imgsz"),
])
def test_hostile_config_files_are_one_line_errors(tmp_path, text, needle):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:  # before the fix the bombs never returned
        load_config(path)
    assert needle in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)


def test_a_deeply_nested_but_legal_override_value_is_an_error_not_a_traceback():
    with pytest.raises(ConfigError, match="general.seed"):
        load_config(None, ["general.seed=" + "1" * 5000])
