"""Load, override, validate and save configs, with errors that name the file, line and key."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ..errors import ConfigError, mask_url_credentials
from ..fsio import atomic_write_text
from .schema import MarauderConfig

KeyPath = tuple[str, ...]


MAX_NODES = 100_000  # a config has a few hundred; YAML aliases can make a few bytes expand to billions
MAX_DEPTH = 50


def expanded_size(root) -> int:
    """How many nodes the document holds once every alias is expanded (memoised: linear in the file)."""
    sizes: dict[int, int] = {}
    order, stack = [], [root]
    while stack:  # iterative post-order: no recursion limit to hit
        node = stack.pop()
        if id(node) in sizes:
            continue
        sizes[id(node)] = 0
        order.append(node)
        if isinstance(node, yaml.MappingNode):
            stack.extend(v for pair in node.value for v in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    for node in reversed(order):  # children before parents
        children = [v for pair in node.value for v in pair] if isinstance(node, yaml.MappingNode) else (
            node.value if isinstance(node, yaml.SequenceNode) else [])
        sizes[id(node)] = min(1 + sum(sizes[id(c)] for c in children), 10 * MAX_NODES)
    return sizes[id(root)]


# libyaml when PyYAML has it (about 10x faster than the pure-Python parser; it also caps nesting itself)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _checked_root(loader):
    """The document's node tree, refused (ConfigError) when aliases expand it past MAX_NODES."""
    root = loader.get_single_node()
    if root is not None and expanded_size(root) > MAX_NODES:
        raise ConfigError(f"expands to more than {MAX_NODES} values (YAML aliases referring to aliases); "
                          "write the values out instead", line=root.start_mark.line + 1)
    return root


def _lines_of(root) -> dict[KeyPath, int]:
    lines: dict[KeyPath, int] = {}

    def walk(node, path: KeyPath):
        if len(path) > MAX_DEPTH:
            raise ConfigError(f"nested deeper than {MAX_DEPTH} levels at {'.'.join(path[:5])}...",
                              line=node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                sub = (*path, str(key_node.value))
                lines[sub] = key_node.start_mark.line + 1
                walk(value_node, sub)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                lines[(*path, str(i))] = item.start_mark.line + 1
                walk(item, (*path, str(i)))

    if root is not None:
        walk(root, ())
    return lines


def read_yaml(text: str) -> tuple[Any, dict[KeyPath, int]]:
    """(the document's value, the 1-based line of every mapping key path), parsed once.

    Refuses (ConfigError) documents that expand past MAX_NODES or nest deeper than MAX_DEPTH, on the
    node tree, before any value is built."""
    loader = _LOADER(text)
    try:
        root = _checked_root(loader)
        lines = _lines_of(root)
        return (loader.construct_document(root) if root is not None else None), lines
    finally:
        loader.dispose()


def key_lines(text: str) -> dict[KeyPath, int]:
    """The line of every mapping key path (read_yaml's refusals apply)."""
    return read_yaml(text)[1]


def _model_at(path: KeyPath, root: type[BaseModel] = MarauderConfig) -> type[BaseModel] | None:
    """The pydantic model that owns the last key of `path` (for 'did you mean' hints)."""
    model: Any = root
    for key in path[:-1]:
        field = model.model_fields.get(key) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if field is None:
            return None
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            model = ann
        else:
            args = [a for a in getattr(ann, "__args__", ()) if isinstance(a, type) and issubclass(a, BaseModel)]
            if not args:
                return None
            model = args[0]
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _suggest(path: KeyPath, root: type[BaseModel] = MarauderConfig) -> str:
    model = _model_at(path, root)
    if model is None:
        return ""
    close = difflib.get_close_matches(path[-1], list(model.model_fields), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


def raise_validation(err: ValidationError, source: str, lines: dict[KeyPath, int],
                     root: type[BaseModel] = MarauderConfig):
    """Turn a pydantic error into a ConfigError naming file, line and key (with a close-match hint)."""
    first = err.errors()[0]
    loc = tuple(str(p) for p in first["loc"])
    key = ".".join(loc) or "<root>"
    line = None
    for n in range(len(loc), 0, -1):  # the deepest key we know a line for
        if loc[:n] in lines:
            line = lines[loc[:n]]
            break
    if first["type"] == "extra_forbidden":
        msg = f"unknown key '{key}'{_suggest(loc, root)}"
    else:
        msg = f"{key}: {first['msg']}"
        if (
            "input" in first and not isinstance(first["input"], dict | list)
            and f"got {first['input']}" not in msg  # validators often already say what they got
        ):
            msg += f" (got {mask_url_credentials(repr(first['input']))})"
    more = len(err.errors()) - 1
    if more:
        msg += f" [and {more} more problem(s)]"
    raise ConfigError(msg, file=source, line=line) from None


def parse_override(text: str) -> tuple[KeyPath, Any]:
    """'section.key=value' -> (('section', 'key'), value), the value parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' is not of the form section.key=value")
    key, raw = text.split("=", 1)
    path = tuple(k for k in key.strip().split(".") if k)
    if len(path) < 2:
        raise ConfigError(f"override '{text}' must name a section and a key, e.g. general.seed=1")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        raise ConfigError(f"override '{text}': value cannot be read ({type(exc).__name__}: {exc})") from None
    return path, value


def _apply(data: dict, path: KeyPath, value: Any) -> None:
    node = data
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[path[-1]] = value


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> MarauderConfig:
    """Read a YAML config (or the defaults when `path` is None) and apply `section.key=value` overrides."""
    data: dict = {}
    lines: dict[KeyPath, int] = {}
    source = "<defaults>"
    if path is not None:
        p = Path(path)
        source = str(path)
        if not p.is_file():
            raise ConfigError("config file not found", file=source)
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"not a UTF-8 text file ({exc.reason} at byte {exc.start})", file=source) from None
        try:
            data, lines = read_yaml(text)
            data = data or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            raise ConfigError(
                f"not valid YAML: {getattr(exc, 'problem', exc)}", file=source,
                line=mark.line + 1 if mark else None,
            ) from None
        except ConfigError as exc:
            raise ConfigError(exc.message, file=source, line=exc.line) from None
        except RecursionError:
            raise ConfigError(f"nested too deeply to read (more than {MAX_DEPTH} levels)", file=source) from None
        except ValueError as exc:  # e.g. an integer past Python's digit limit
            raise ConfigError(f"a value cannot be read: {exc}", file=source) from None
        if not isinstance(data, dict):
            raise ConfigError("top level must be a mapping of sections", file=source, line=1)
    try:
        cfg = MarauderConfig.model_validate(data)  # report file errors before override errors
    except ValidationError as err:
        raise_validation(err, source, lines)
    except (OverflowError, ValueError) as exc:  # a huge number where a float is expected
        raise ConfigError(f"a value is out of range: {exc}", file=source) from None
    for text in overrides or []:
        key_path, value = parse_override(text)
        _apply(data, key_path, value)
        try:
            cfg = MarauderConfig.model_validate(data)
        except ValidationError as err:
            raise_validation(err, f"override '{text}'", {})
        except (OverflowError, ValueError) as exc:
            raise ConfigError(f"override '{text}': value is out of range: {exc}") from None
    return cfg


def dump_config(cfg: BaseModel) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def save_resolved(cfg: MarauderConfig, directory: str | Path, name: str = "resolved_config.yaml") -> Path:
    """Write the fully resolved config next to a stage's outputs (atomic)."""
    return atomic_write_text(Path(directory) / name, dump_config(cfg))
