"""pipeline_config.yaml: what `marauder calibrate` writes and `evaluate`/`export` read.

A person can read and edit it; unknown keys are errors. Paths are relative to the file's folder
unless absolute. Pydantic checks the structure; what the file says about the pipeline (calibrators,
thresholds, fusion) is checked by marauder.runtime.spec, the same checks a deployment package gets.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import Field, ValidationError

from ..config.sections.base import Section
from ..config.sections.deploy import TTAConfig
from ..config.sections.stages import FusionConfig
from ..errors import ConfigError
from ..runtime.spec import problems


class ModelEntry(Section):
    name: str
    path: str
    confidence_threshold: float = Field(0.001, ge=0, le=1, description="applied before fusion")


class PipelineSpec(Section):
    version: int = 1
    class_names: list[str]
    imgsz: int = Field(640, ge=32)
    models: list[ModelEntry] = Field(min_length=1)
    tta: TTAConfig = Field(default_factory=TTAConfig)
    fusion: FusionConfig = Field(default_factory=FusionConfig)
    raw_confidence: float = Field(0.01, ge=0, le=1)
    calibrator: str | None = Field("calibrator.pth", description="file with the fitted calibrators")
    # class name -> calibrator dict (see marauder.runtime.calibration); "__pooled__" is the fallback
    calibration: dict[str, dict] = Field(default_factory=dict)
    # class name -> operating threshold on the calibrated score
    thresholds: dict[str, float] = Field(default_factory=dict)
    critical_species: list[str] = Field(default_factory=list)


def load_pipeline_spec(path: str | Path) -> PipelineSpec:
    from ..config.loader import key_lines, raise_validation

    path = Path(path)
    if not path.is_file():
        raise ConfigError("pipeline config not found", file=str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=str(path)) from None
    try:
        spec = PipelineSpec.model_validate(yaml.safe_load(text) or {})
    except ValidationError as err:
        raise_validation(err, str(path), key_lines(text), PipelineSpec)
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", file=str(path)) from None
    found = problems(spec.model_dump())
    if found:
        key, message = found[0]
        more = f" [and {len(found) - 1} more problem(s)]" if len(found) > 1 else ""
        raise ConfigError(f"{key}: {message}{more}", file=str(path), line=key_lines(text).get(tuple(key.split("."))))
    return spec


def resolve_relative(spec_file: str | Path, path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else Path(spec_file).resolve().parent / p
