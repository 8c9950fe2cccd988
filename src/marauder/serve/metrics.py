"""Prometheus metrics in the app's own registry (several apps in one process do not collide)."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ServiceMetrics:
    def __init__(self, max_batch: int, class_names: list[str]):
        self.registry = r = CollectorRegistry()
        ProcessCollector(registry=r)  # process_resident_memory_bytes, cpu seconds, open fds
        PlatformCollector(registry=r)
        self.requests = Counter("marauder_http_requests", "HTTP requests by route, method and status",
                                ["route", "method", "status"], registry=r)
        self.latency = Histogram("marauder_http_request_duration_seconds", "HTTP request latency by route",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.errors = Counter("marauder_http_errors", "refused or failed requests by reason",
                              ["route", "reason"], registry=r)
        self.in_flight = Gauge("marauder_http_in_flight_requests", "requests being handled", registry=r)
        self.batch_size = Histogram("marauder_inference_batch_size", "images per runtime call",
                                    buckets=tuple(range(1, max_batch + 1)), registry=r)
        self.inference = Histogram("marauder_inference_duration_seconds", "runtime predict time per batch",
                                   buckets=LATENCY_BUCKETS, registry=r)
        self.queue_depth = Gauge("marauder_inference_queue_depth", "images waiting for the model", registry=r)
        self.pixels_in_flight = Gauge("marauder_decoded_pixels_in_flight", "decoded pixels held by requests "
                                      "(serve.max_inflight_pixels bounds it)", registry=r)
        self.images = Counter("marauder_images", "images run through the model", registry=r)
        self.detections = Counter("marauder_detections", "detections returned, by class", ["class_name"],
                                  registry=r)
        self.info = Gauge("marauder_model_info", "the served package (value 1)",
                          ["backend", "models", "classes"], registry=r)
        for name in class_names:
            self.detections.labels(class_name=name)

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.inference.observe(seconds)
        self.images.inc(size)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
