"""Self-supervised pretraining (MoCo v3) of detector backbones on unlabelled underwater images."""

from .checkpoint import SSLCheckpoint, load_ssl_checkpoint
from .pretrain import SSLResult, run_ssl_pretrain

__all__ = ["SSLCheckpoint", "SSLResult", "load_ssl_checkpoint", "run_ssl_pretrain"]
