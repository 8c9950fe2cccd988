"""`marauder evaluate` end to end on the tiny trained model: reports, baseline gate, bad input."""

from __future__ import annotations

import json
import runpy
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from marauder.cli import main

REPO = Path(__file__).resolve().parents[2]
SUMMARY_KEYS = {"mAP50-95", "mAP50", "mAP75", "AP_small", "AP_medium", "AP_large", "per_class", "critical_recall",
                "ece", "latency_ms", "throughput_ips", "num_images"}
PER_CLASS_KEYS = {"AP50-95", "AP50", "precision", "recall", "f1", "support"}
FAST = ["--imgsz", "64", "--batch", "8", "evaluation.bootstrap=50", "general.device=cpu"]


@pytest.fixture(scope="module")
def evaluated(tiny_model, organized_sample, tmp_path_factory):
    """One CLI evaluation of the tiny model on the sample's test split, shared by the tests below."""
    out = tmp_path_factory.mktemp("eval") / "tiny"
    code = main(["evaluate", "--model", str(tiny_model), "--test-data", str(organized_sample / "dataset.yaml"),
                 "--output", str(out), "--workspace", str(out.parent), *FAST])
    assert code == 0
    return out


def test_report_files_and_stable_keys(evaluated, organized_sample):
    doc = json.loads((evaluated / "report.json").read_text())
    summary = doc["summary"]
    assert SUMMARY_KEYS <= set(summary)
    names = yaml.safe_load((organized_sample / "dataset.yaml").read_text())["names"]
    names = list(names.values()) if isinstance(names, dict) else names
    assert list(summary["per_class"]) == names
    for entry in summary["per_class"].values():
        assert PER_CLASS_KEYS <= set(entry)
    # the default config's critical species are sample classes: each gets recall with a 95% CI
    assert set(summary["critical_recall"]) == {"lionfish", "purple_sea_urchin", "abalone"}
    for entry in summary["critical_recall"].values():
        assert {"recall", "ci_low", "ci_high"} <= set(entry)
        if entry["recall"] is not None:
            assert entry["ci_low"] <= entry["recall"] <= entry["ci_high"]
    assert summary["num_images"] == len(list((organized_sample / "images" / "test").iterdir()))
    assert 0 <= summary["mAP50-95"] <= summary["mAP50"] <= 1
    assert summary["latency_ms"] > 0 and summary["throughput_ips"] > 0
    cm = doc["details"]["confusion_matrix"]
    assert len(cm) == len(names) + 1  # background row and column
    # every labelled box is somewhere in its true column
    supports = [summary["per_class"][n]["support"] for n in names]
    assert [sum(row[k] for row in cm) for k in range(len(names))] == supports
    assert (evaluated / "report.md").read_text().startswith("# Evaluation:")
    html = (evaluated / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 5
    assert (evaluated / "resolved_config.yaml").exists()


def test_baseline_gate(evaluated, tiny_model, organized_sample, tmp_path, capsys):
    data = str(organized_sample / "dataset.yaml")
    # the baseline given as a model: evaluated the same way; the same model is not worse than itself
    same = main(["evaluate", "--model", str(tiny_model), "--test-data", data, "--output", str(tmp_path / "same"),
                 "--baseline", str(tiny_model), *FAST])
    assert same == 0
    assert "PASSED" in capsys.readouterr().out
    comparison = json.loads((tmp_path / "same" / "comparison.json").read_text())
    assert comparison["passed"] is True and comparison["rows"][0]["delta"] == 0
    assert (tmp_path / "same" / "baseline" / "report.json").exists()
    # a baseline that was much better: the new model must be rejected (exit 1), deltas printed
    better = json.loads((evaluated / "report.json").read_text())
    better["summary"]["mAP50-95"] = (better["summary"]["mAP50-95"] or 0) + 0.2
    (tmp_path / "better.json").write_text(json.dumps(better))
    worse = main(["evaluate", "--model", str(tiny_model), "--test-data", data, "--output", str(tmp_path / "w"),
                  "--baseline", str(tmp_path / "better.json"), *FAST])
    out = capsys.readouterr().out
    assert worse == 1
    assert "FAILED (mAP50-95)" in out and "-0.2000" in out


def test_guide_script_path_writes_default_output(tiny_model, organized_sample, tmp_path, monkeypatch, capsys):
    """The guide's `python evaluation/comprehensive_evaluator.py --model M --test-data D` (run in-process)."""
    script = REPO / "evaluation" / "comprehensive_evaluator.py"
    monkeypatch.setattr(sys, "argv", [str(script), "--model", str(tiny_model), "--test-data",
                                      str(organized_sample / "dataset.yaml"), "--workspace", str(tmp_path), *FAST])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(script), run_name="__main__")
    assert done.value.code == 0
    out = tmp_path / "outputs" / "evaluation" / Path(tiny_model).stem
    assert json.loads((out / "report.json").read_text())["meta"]["split"] == "test"
    assert "mAP50-95" in capsys.readouterr().out
    assert (tmp_path / "logs" / "evaluation.log").exists()


def _dataset_copy(organized_sample: Path, tmp_path: Path, **changes) -> Path:
    doc = yaml.safe_load((organized_sample / "dataset.yaml").read_text())
    doc["path"] = str(organized_sample)
    doc.update(changes)
    path = tmp_path / "dataset.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _names(organized_sample: Path) -> list[str]:
    names = yaml.safe_load((organized_sample / "dataset.yaml").read_text())["names"]
    return list(names.values()) if isinstance(names, dict) else list(names)


def test_class_name_mismatch_is_named_and_map_classes_fixes_it(tiny_model, organized_sample, tmp_path, capsys):
    names = _names(organized_sample)
    renamed = ["scorpionfish" if n == "lionfish" else n for n in names]
    data = _dataset_copy(organized_sample, tmp_path, names=renamed)
    code = main(["evaluate", "--model", str(tiny_model), "--test-data", str(data), "--output", str(tmp_path / "o"),
                 *FAST])
    err = capsys.readouterr().err
    assert code == 2
    assert "only in the model: ['lionfish']" in err and "only in the dataset: ['scorpionfish']" in err
    assert not (tmp_path / "o").exists()  # nothing written for a run that did not happen
    code = main(["evaluate", "--model", str(tiny_model), "--test-data", str(data), "--output", str(tmp_path / "o"),
                 "--map-classes", "lionfish=scorpionfish", *FAST])
    assert code == 0
    summary = json.loads((tmp_path / "o" / "report.json").read_text())["summary"]
    assert "scorpionfish" in summary["per_class"]


def test_bad_input_errors(tiny_model, organized_sample, tmp_path, capsys):
    def run(model, data, *extra):
        code = main(["evaluate", "--model", str(model), "--test-data", str(data), "--output",
                     str(tmp_path / "out"), *FAST, *extra])
        return code, capsys.readouterr().err.replace("\n", " ")

    data = organized_sample / "dataset.yaml"
    # a TensorRT engine on a machine without TensorRT
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"not really an engine")
    code, err = run(engine, data)
    assert code == 2 and "needs TensorRT, which is not installed" in err and "model.engine" in err
    # an empty split
    (tmp_path / "empty" / "images").mkdir(parents=True)
    empty = _dataset_copy(organized_sample, tmp_path / "empty", test=str(tmp_path / "empty" / "images"))
    code, err = run(tiny_model, empty)
    assert code == 2 and "the 'test' split has no images" in err
    # a label with a class id outside the dataset: named with file and line
    bad = tmp_path / "bad"
    shutil.copytree(organized_sample / "images" / "test", bad / "images")
    shutil.copytree(organized_sample / "labels" / "test", bad / "labels")
    label = sorted((bad / "labels").glob("*.txt"))[0]
    label.write_text(label.read_text() + "42 0.5 0.5 0.1 0.1\n")
    code, err = run(tiny_model, _dataset_copy(organized_sample, bad, test=str(bad / "images")))
    lines = len(label.read_text().splitlines())
    assert code == 2 and f"{label.name}:{lines}: unknown class id 42" in err
    # a missing model names the command that makes one
    code, err = run(tmp_path / "nope.pt", data)
    assert code == 2 and "nope.pt not found" in err and "marauder train-baseline" in err
    code, err = run(tmp_path / "pipeline_config.yaml", data)
    assert code == 2 and "run `marauder calibrate` first" in err
    assert not (tmp_path / "out").exists()
