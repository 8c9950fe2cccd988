"""Read pipeline_config.yaml, what `marauder calibrate` writes and `evaluate`/`export` read.

The document is a `PipelineSpec` (marauder.runtime.spec), the same type and the same checks as a
deployment package's config; this adds the file's line numbers to the first problem. A person can read
and edit it; unknown keys are errors. Paths are relative to the file's folder unless absolute.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from ..errors import ConfigError
from ..runtime.spec import PipelineSpec, SpecError, parse_spec


def load_pipeline_spec(path: str | Path) -> PipelineSpec:
    from ..config.loader import key_lines

    path = Path(path)
    if not path.is_file():
        raise ConfigError("pipeline config not found", file=str(path))
    try:
        text = path.read_text(encoding="utf-8")
        doc = yaml.safe_load(text)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=str(path)) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", file=str(path)) from None
    try:
        return parse_spec(doc if doc is not None else {})
    except SpecError as exc:
        key, message = exc.problems[0]
        more = f" [and {len(exc.problems) - 1} more problem(s)]" if len(exc.problems) > 1 else ""
        lines = key_lines(text)
        parts = tuple(key.split(".")) if key else ()
        while parts and parts not in lines:  # a missing key: the line of the section it belongs in
            parts = parts[:-1]
        raise ConfigError(f"{key}: {message}{more}" if key else message + more, file=str(path),
                          line=lines.get(parts)) from None


def resolve_relative(spec_file: str | Path, path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else Path(spec_file).resolve().parent / p
