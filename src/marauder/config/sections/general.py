"""Settings every stage shares: device, precision, seed, workers, class list, logging, checkpoints."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from .base import Section


class GeneralConfig(Section):
    seed: int = 0
    device: str | int | list[int] = Field(
        "auto", description="'auto', 'cpu', a GPU index, or a list of GPU indices (DDP training)"
    )
    mixed_precision: bool = True
    num_workers: int = Field(4, ge=0)
    imgsz: int = Field(640, ge=32, description="default image size for training and inference")
    classes: list[str] = Field(
        default_factory=list,
        description="training class names, in class-index order (used when no classes.txt / --names)",
    )
    gradient_accumulation_steps: int = Field(1, ge=1, description="1: Ultralytics' own nominal batch (nbs 64); "
                                             "k > 1: exactly k batches per optimizer step")
    deterministic: bool = Field(True, description="Ultralytics' deterministic algorithms (its default); false "
                                "lets CUDA pick faster non-deterministic kernels")
    weights_dir: str = Field(
        "weights", description="pretrained weights folder (COCO .pt files), relative to the workspace; "
                               "fetched into it when online, used from it offline"
    )
    allow_partial_init: bool = Field(
        False, description="allow an initialisation that fills under 90 % of the backbone's parameters"
    )

    @field_validator("imgsz")
    @classmethod
    def _stride_aligned(cls, v: int) -> int:
        if v % 32:
            raise ValueError(f"imgsz must be a multiple of 32 (the detector's stride), got {v}")
        return v


class WandbConfig(Section):
    enabled: bool = False
    project: str = "marauder"
    entity: str | None = None
    name: str | None = None
    tags: list[str] = Field(default_factory=list)
    mode: Literal["online", "offline", "disabled", "auto"] = Field(
        "auto", description="'auto' logs online when an API key is present, else offline; never prompts"
    )


class LoggingConfig(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    wandb: WandbConfig = Field(default_factory=WandbConfig)
    tensorboard: bool = True


class CheckpointingConfig(Section):
    save_best_only: bool = False
    keep_last_n: int = Field(3, ge=1)
    save_period: int = Field(-1, description="save an epoch checkpoint every N epochs; -1 disables")


class StorageConfig(Section):
    provider: Literal["s3", "do_spaces"] = "do_spaces"
    endpoint_url: str | None = Field(
        "https://nyc3.digitaloceanspaces.com", description="S3-compatible endpoint; null for AWS S3"
    )
    region: str | None = "nyc3"
    bucket: str = "marauder"

    @field_validator("endpoint_url")
    @classmethod
    def _is_url(cls, v: str | None) -> str | None:
        from urllib.parse import urlsplit

        if v is None:
            return v
        try:
            parts = urlsplit(v)
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError as exc:
            raise ValueError(f"not a URL ({exc})") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL with a host, e.g. https://nyc3.digitaloceanspaces.com")
        if parts.username or parts.password:
            raise ValueError("must not carry credentials; export DO_SPACES_KEY / DO_SPACES_SECRET instead")
        return v
    prefix: str = ""
    multipart_threshold_mb: int = Field(64, ge=5, description="files at least this big upload in parts")
    multipart_chunk_mb: int = Field(
        64, ge=5, le=5120, description="part size (S3 allows 5 MB..5 GB per part, at most 10,000 parts)"
    )
    max_concurrency: int = Field(8, ge=1, description="parallel part transfers per file")
