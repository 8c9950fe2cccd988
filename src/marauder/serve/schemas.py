"""Response bodies (they make the OpenAPI document that clients and schemathesis read)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Detection(BaseModel):
    class_id: int = Field(description="index into the package's class_names")
    class_name: str
    score: float = Field(description="calibrated confidence (raw when the package is not calibrated)")
    box: list[float] = Field(min_length=4, max_length=4, description="x1, y1, x2, y2 in pixels of the image sent")


class ImageResult(BaseModel):
    width: int
    height: int
    detections: list[Detection]


class DetectResponse(ImageResult):
    request_id: str


class BatchResponse(BaseModel):
    request_id: str
    results: list[ImageResult] = Field(description="one entry per image, in the order sent")


class ModelInfo(BaseModel):
    status: str
    backend: str = Field(description="onnx, tensorrt, or both")
    providers: list[str] = Field(description="ONNX Runtime execution providers in use")
    models: list[str]
    class_names: list[str]
    calibrated: bool
    thresholds_applied: bool
    max_batch: int


class Health(BaseModel):
    status: str


class ErrorBody(BaseModel):
    detail: str
