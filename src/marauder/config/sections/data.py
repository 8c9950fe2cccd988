"""Data acquisition (FathomNet), ingest of unlabelled sources, and dataset organisation."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from .base import Section


class FathomNetFilters(Section):
    min_depth: float | None = Field(None, description="metres")
    max_depth: float | None = None
    region: list[float] | None = Field(
        None, description="bounding box [min_lat, min_lon, max_lat, max_lon]", min_length=4, max_length=4
    )
    start_time: str | None = Field(None, description="ISO date, e.g. 2015-01-01")
    end_time: str | None = None


class FathomNetConfig(Section):
    concepts: list[str] = Field(
        default_factory=lambda: ["Pterois", "Strongylocentrotus purpuratus", "Haliotis"],
        description="concepts (scientific or common names) to download; each becomes one class",
    )
    aliases: dict[str, list[str]] = Field(
        default_factory=lambda: {
            "lionfish": ["Pterois"],
            "purple sea urchin": ["Strongylocentrotus purpuratus"],
            "abalone": ["Haliotis"],
        },
        description="common name -> FathomNet concepts",
    )
    include_descendants: bool = True
    limit: int | None = Field(1000, ge=1, description="images per concept; null for all")
    page_size: int = Field(100, ge=1, le=1000)
    concurrency: int = Field(16, ge=1, le=128)
    max_retries: int = Field(5, ge=0)
    backoff_seconds: float = Field(0.5, ge=0)
    timeout_seconds: float = Field(30.0, gt=0)
    filters: FathomNetFilters = Field(default_factory=FathomNetFilters)


class IngestConfig(Section):
    frame_rate: float = Field(1.0, gt=0, description="frames per second extracted from videos")
    phash_distance: int = Field(
        6, ge=0, le=64, description="a frame within this many bits (perceptual hash) of the last kept one is dropped"
    )
    link: Literal["copy", "hardlink", "symlink"] = "copy"
    jpeg_quality: int = Field(95, ge=50, le=100, description="JPEG quality of frames extracted from videos")


class OrganizeConfig(Section):
    split: list[float] = Field(default_factory=lambda: [0.7, 0.15, 0.15], min_length=3, max_length=3)
    seed: int = 0
    group_by: str | None = Field(
        None, description="REGEX (first capture group of the file name) or meta:KEY; null = auto"
    )
    link: Literal["copy", "hardlink"] = "copy"

    @model_validator(mode="after")
    def _split_sums_to_one(self):
        if any(f < 0 for f in self.split) or abs(sum(self.split) - 1.0) > 1e-6:
            raise ValueError(f"split fractions must be >= 0 and sum to 1, got {self.split}")
        return self


class DataConfig(Section):
    fathomnet: FathomNetConfig = Field(default_factory=FathomNetConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    organize: OrganizeConfig = Field(default_factory=OrganizeConfig)
    extra_unlabelled_dirs: list[str] = Field(
        default_factory=list, description="more folders of unlabelled images (SSL, active learning)"
    )
