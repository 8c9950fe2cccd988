"""Typed configuration: `load_config(path, overrides)` returns a validated `MarauderConfig`."""

from .loader import dump_config, load_config, parse_override, save_resolved
from .schema import MarauderConfig

__all__ = ["MarauderConfig", "dump_config", "load_config", "parse_override", "save_resolved"]
