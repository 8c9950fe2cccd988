"""Generate the config reference (docs/CONFIG_REFERENCE.md) from the typed config, so it never drifts."""

from __future__ import annotations

import json
import typing

from pydantic import BaseModel

from .schema import MarauderConfig


def _type_name(annotation) -> str:
    text = repr(annotation) if not isinstance(annotation, type) else annotation.__name__
    return text.replace("typing.", "").replace("NoneType", "null")


def _nested_model(annotation) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _default(field) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
    else:
        value = field.default
    if isinstance(value, BaseModel):
        return ""
    if isinstance(value, dict) and value and isinstance(next(iter(value.values())), BaseModel):
        return "(see below)"
    return json.dumps(value, default=str)


def _rows(model: type[BaseModel], prefix: str, out: list[str], nested: list[tuple[str, type[BaseModel]]]):
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        sub = _nested_model(field.annotation)
        if sub is not None:
            nested.append((key, sub))
            continue
        args = typing.get_args(field.annotation)
        if typing.get_origin(field.annotation) is dict and len(args) == 2 and _nested_model(args[1]):
            nested.append((f"{key}.<name>", args[1]))
        desc = (field.description or "").replace("|", "\\|")
        type_text = _type_name(field.annotation).replace("|", "\\|")
        out.append(f"| `{key}` | `{type_text}` | `{_default(field)}` | {desc} |")


def render_reference() -> str:
    lines = [
        "# Config reference",
        "",
        "Generated from the typed config (`marauder config --reference`); do not edit by hand.",
        "Every key can be set in the YAML file or on the command line as `section.key=value`.",
        "",
    ]
    for section, field in MarauderConfig.model_fields.items():
        model = field.annotation
        queue = [(section, model)]
        while queue:
            prefix, current = queue.pop(0)
            lines += [f"## `{prefix}`", "", "| key | type | default | meaning |", "|---|---|---|---|"]
            rows: list[str] = []
            nested: list[tuple[str, type[BaseModel]]] = []
            _rows(current, f"{prefix}.", rows, nested)
            lines += rows + [""]
            queue = nested + queue
    return "\n".join(lines) + "\n"
