"""Self-supervised pretraining (MoCo v3) of detector backbones on unlabelled underwater images.

The names below load on first use: reading an SSL checkpoint (what train-baseline does) must not
import lightly and the augmentation stack that only pretraining needs.
"""

from __future__ import annotations

import importlib

_EXPORTS = {"SSLCheckpoint": "checkpoint", "load_ssl_checkpoint": "checkpoint",
            "SSLResult": "pretrain", "run_ssl_pretrain": "pretrain"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'marauder.ssl' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
