"""The root config: one field per section of config/training_config.yaml."""

from __future__ import annotations

from pydantic import Field

from .sections.base import Section
from .sections.data import DataConfig
from .sections.deploy import (
    DeploymentConfig,
    EvaluationConfig,
    ExportConfig,
    ServeConfig,
    TTACalibrationConfig,
)
from .sections.general import CheckpointingConfig, GeneralConfig, LoggingConfig, StorageConfig
from .sections.stages import (
    ActiveLearningConfig,
    CriticalSpeciesConfig,
    EnsembleConfig,
    MultiscaleTrainingConfig,
)
from .sections.training import BaselineYoloConfig, SSLPretrainingConfig


class MarauderConfig(Section):
    general: GeneralConfig = Field(default_factory=GeneralConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    checkpointing: CheckpointingConfig = Field(default_factory=CheckpointingConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    ssl_pretraining: SSLPretrainingConfig = Field(default_factory=SSLPretrainingConfig)
    baseline_yolo: BaselineYoloConfig = Field(default_factory=BaselineYoloConfig)
    active_learning: ActiveLearningConfig = Field(default_factory=ActiveLearningConfig)
    critical_species: CriticalSpeciesConfig = Field(default_factory=CriticalSpeciesConfig)
    ensemble: EnsembleConfig = Field(default_factory=EnsembleConfig)
    multiscale_training: MultiscaleTrainingConfig = Field(default_factory=MultiscaleTrainingConfig)
    tta_calibration: TTACalibrationConfig = Field(default_factory=TTACalibrationConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    deployment: DeploymentConfig = Field(default_factory=DeploymentConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
