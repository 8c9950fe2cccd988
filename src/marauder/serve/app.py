"""The FastAPI application: endpoints, API-key check, size limits, metrics, errors without tracebacks.

`create_app(pipeline, cfg, keys)` takes an already-loaded runtime pipeline (anything with the
EdgePipeline interface: `predict(list of BGR images)`, `class_names`, `config`, `backend_kind`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from ..config.sections.deploy import ServeConfig
from .batcher import MicroBatcher, Overloaded
from .budget import BudgetExhausted, PixelBudget
from .images import ImageRejected, Upload, check_content_type, check_image, decode_upload, media_type
from .keys import KeyStore
from .metrics import ServiceMetrics
from .schemas import BatchResponse, DetectResponse, ErrorBody, Health, ImageResult, ModelInfo

log = logging.getLogger("marauder.serve")
API_KEY_HEADER = "X-API-Key"
ROUTES = ("/v1/detect", "/v1/detect/batch", "/healthz", "/readyz", "/metrics", "/openapi.json", "/docs")


class ApiError(Exception):
    def __init__(self, status: int, reason: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.reason, self.message, self.headers = status, reason, message, headers


def _route_of(scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None) or scope.get("path", "")
    return path if path in ROUTES else "other"


class _TooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """413 for bodies over the limit: at once from Content-Length, else as soon as the stream passes it."""

    def __init__(self, app, max_bytes: int, metrics: ServiceMetrics):
        self.app, self.max_bytes, self.metrics = app, int(max_bytes), metrics

    async def _reject(self, scope, send, status=413, message=None):
        self.metrics.errors.labels(route=_route_of(scope), reason="body_too_large" if status == 413
                                   else "bad_request").inc()
        body = ErrorBody(detail=message or f"request body over {self.max_bytes} bytes (serve.max_body_mb)")
        response = JSONResponse(body.model_dump(), status_code=status, headers={"Connection": "close"})
        await response(scope, None, send)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None:
            if not length.isdigit():
                return await self._reject(scope, send, 400, "invalid Content-Length header")
            if int(length) > self.max_bytes:
                return await self._reject(scope, send)
        received, started = 0, False

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge()
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._reject(scope, send)


class MetricsMiddleware:
    def __init__(self, app, metrics: ServiceMetrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), 500

        async def recording_send(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, recording_send)
        finally:
            self.metrics.in_flight.dec()
            route = _route_of(scope)
            self.metrics.requests.labels(route=route, method=scope["method"], status=str(status)).inc()
            self.metrics.latency.labels(route=route).observe(time.perf_counter() - start)


def _body_doc(multipart_field: str, many: bool) -> dict:
    binary = {"type": "string", "format": "binary"}
    field = {"type": "array", "items": binary, "minItems": 1} if many else binary
    content = {"multipart/form-data": {"schema": {"type": "object", "properties": {multipart_field: field},
                                                   "required": [multipart_field]}}}
    if not many:
        content.update({kind: {"schema": binary} for kind in ("image/jpeg", "image/png", "image/webp", "image/bmp")})
    return {"requestBody": {"required": True, "content": content}}


def _error_responses(*codes: int) -> dict:
    text = {400: "not a readable image, or a malformed request", 401: "missing or invalid API key",
            413: "body over serve.max_body_mb, or images over serve.max_pixels / serve.max_request_pixels",
            415: "not a JPEG, PNG, WebP or BMP image", 422: "invalid parameters",
            503: "model not ready, queue full or decoded-pixel budget in use (retry after Retry-After)",
            504: "the model did not answer in time"}
    return {c: {"model": ErrorBody, "description": text[c]} for c in codes}


def create_app(pipeline, cfg: ServeConfig, keys: KeyStore) -> FastAPI:
    metrics = ServiceMetrics(cfg.max_batch, list(pipeline.class_names))
    batcher = MicroBatcher(pipeline.predict, cfg.max_batch, cfg.batch_window_ms / 1000.0, cfg.max_queue,
                           observe=metrics.observe_batch)
    class_names = list(pipeline.class_names)
    info = ModelInfo(
        status="ready", backend=pipeline.backend_kind,
        providers=sorted({p for d in getattr(pipeline, "detectors", [])
                          for p in (getattr(getattr(d.backend, "session", None), "get_providers", list)())}),
        models=pipeline.config.model_names, class_names=class_names,
        calibrated=bool(getattr(pipeline, "per_class", None) or getattr(pipeline, "pooled", None)),
        thresholds_applied=bool(getattr(pipeline, "apply_thresholds", True)), max_batch=cfg.max_batch)
    metrics.info.labels(backend=info.backend, models=",".join(info.models), classes=str(len(class_names))).set(1)
    draining = False
    budget = PixelBudget(cfg.max_inflight_pixels)

    @asynccontextmanager
    async def lifespan(app):
        nonlocal draining
        await batcher.start()
        log.info("serving %s (%s) on %d classes", info.models, info.backend, len(class_names))
        yield
        draining = True
        await batcher.stop()

    app = FastAPI(title="Marauder detection service", version="1", lifespan=lifespan,
                  description="Underwater species detection over a Marauder deployment package. "
                              f"Send the API key in {API_KEY_HEADER} or as a Bearer token.")
    app.add_middleware(BodyLimitMiddleware, max_bytes=int(cfg.max_body_mb * 2**20), metrics=metrics)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.state.metrics, app.state.batcher = metrics, batcher

    def error(request: Request, status: int, reason: str, message: str, headers=None) -> JSONResponse:
        metrics.errors.labels(route=_route_of(request.scope), reason=reason).inc()
        return JSONResponse({"detail": message}, status_code=status, headers=headers)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return error(request, exc.status, exc.reason, exc.message, exc.headers)

    @app.exception_handler(ImageRejected)
    async def _rejected(request: Request, exc: ImageRejected):
        return error(request, exc.status, exc.reason, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        return error(request, exc.status_code, f"http_{exc.status_code}", str(exc.detail), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        # no `input` echo: the message names the field only
        fields = "; ".join(f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg', '')}" for e in exc.errors())
        return error(request, 422, "invalid_parameters", fields or "invalid request")

    @app.exception_handler(ClientDisconnect)
    async def _client_left(request: Request, exc: ClientDisconnect):
        # the client went away mid-upload: its event, not a server error (499 as nginx logs it; never sent)
        client = request.client.host if request.client else "client"
        log.info("%s disconnected before its request body was complete (%s)", client, _route_of(request.scope))
        return error(request, 499, "client_disconnect", "client closed the connection")

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception):
        request_id = uuid.uuid4().hex
        log.error("request %s failed: %s", request_id, exc, exc_info=exc)
        return error(request, 500, "internal", f"internal server error (request {request_id})")

    api_key = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="an API key")
    bearer = HTTPBearer(auto_error=False, description="the API key as a Bearer token")

    async def require_key(key: str | None = Security(api_key),
                          token: HTTPAuthorizationCredentials | None = Security(bearer)) -> None:
        if not cfg.require_api_key:
            return
        if not keys.check(key or (token.credentials if token else None)):
            raise ApiError(401, "unauthorized", f"missing or invalid API key: send it in the {API_KEY_HEADER} "
                           "header or as 'Authorization: Bearer <key>'", headers={"WWW-Authenticate": "Bearer"})

    async def read_images(request: Request, many: bool) -> list[tuple[bytes, str, bool]]:
        """(bytes, content type, from multipart) for each uploaded image; nothing touches the disk by name."""
        kind = media_type(request.headers.get("content-type"))
        if kind == "multipart/form-data":
            await request.body()  # bounded by BodyLimitMiddleware before anything is parsed
            limit = cfg.max_images_per_request if many else 1
            form = await request.form(max_files=limit, max_fields=limit + 8)
            try:
                files = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
                if not files:
                    raise ApiError(400, "no_image", "multipart body has no file part: send the image as "
                                   "'image' (or 'images' for the batch endpoint)")
                return [(await f.read(), f.content_type or "", True) for f in files]
            finally:
                await form.close()
        if many:
            raise ApiError(415, "unsupported_media_type", "send the images as multipart/form-data parts 'images'")
        check_content_type(kind)
        return [(await request.body(), kind, False)]

    async def check_uploads(uploads: list[tuple[bytes, str, bool]], numbered: bool) -> list[Upload]:
        """Every check that needs no decoding, image by image, then the request's pixel budget."""
        checked = []
        for i, (data, content_type, generic_ok) in enumerate(uploads):
            try:
                checked.append(await run_in_threadpool(check_image, data, content_type, cfg.max_pixels, generic_ok))
            except ImageRejected as exc:
                raise ImageRejected(exc.status, exc.reason, f"image {i}: {exc.message}" if numbered
                                    else exc.message) from None
        total = sum(u.pixels for u in checked)
        if total > cfg.max_request_pixels:
            raise ImageRejected(413, "request_too_many_pixels", f"the images declare {total} pixels together; "
                                f"the limit is {cfg.max_request_pixels} (serve.max_request_pixels)")
        return checked

    async def detect_one(upload: Upload) -> ImageResult:
        image = await run_in_threadpool(decode_upload, upload)
        try:
            dets = await asyncio.wait_for(batcher.submit(image), cfg.request_timeout_s)
        except Overloaded as exc:
            raise ApiError(503, "overloaded", f"busy: {exc}; retry shortly", headers={"Retry-After": "1"}) from None
        except asyncio.TimeoutError:
            raise ApiError(504, "timeout", f"no result within {cfg.request_timeout_s} s "
                           "(serve.request_timeout_s)") from None
        records = dets.to_records(class_names)
        for rec in records:
            metrics.detections.labels(class_name=rec["class_name"]).inc()
        return ImageResult(width=image.shape[1], height=image.shape[0], detections=records)

    async def detect_all(uploads: list[tuple[bytes, str, bool]], numbered: bool) -> list[ImageResult]:
        """Decoded only under the shared pixel budget, which is held until every image of the request
        is done (a failed image does not release it while its siblings still run)."""
        checked = await check_uploads(uploads, numbered)
        try:
            with budget.hold(sum(u.pixels for u in checked)):
                done = await asyncio.gather(*(detect_one(u) for u in checked), return_exceptions=True)
        except BudgetExhausted as exc:  # raised by hold() only, before anything is decoded
            raise ApiError(503, "pixel_budget", f"busy: {exc}; retry shortly", headers={"Retry-After": "1"}) from None
        for i, result in enumerate(done):
            if isinstance(result, ImageRejected) and numbered:
                raise ImageRejected(result.status, result.reason, f"image {i}: {result.message}") from None
            if isinstance(result, BaseException):
                raise result
        return done

    deps = [Depends(require_key)]

    @app.post("/v1/detect", response_model=DetectResponse, dependencies=deps, openapi_extra=_body_doc("image", False),
              responses=_error_responses(400, 401, 413, 415, 503, 504), summary="Detect species in one image")
    async def detect(request: Request):
        """One image, as the raw body (Content-Type image/jpeg, image/png, image/webp, image/bmp) or as
        the multipart part `image`. Boxes are pixels of the image sent; scores are calibrated."""
        result, = await detect_all(await read_images(request, many=False), numbered=False)
        return DetectResponse(request_id=uuid.uuid4().hex, **result.model_dump())

    @app.post("/v1/detect/batch", response_model=BatchResponse, dependencies=deps,
              openapi_extra=_body_doc("images", True), responses=_error_responses(400, 401, 413, 415, 503, 504),
              summary="Detect species in several images")
    async def detect_batch(request: Request):
        """Up to serve.max_images_per_request images as multipart parts `images`; results in the same order.
        One unreadable image fails the whole request, naming its position."""
        results = await detect_all(await read_images(request, many=True), numbered=True)
        return BatchResponse(request_id=uuid.uuid4().hex, results=results)

    @app.get("/healthz", response_model=Health, summary="Liveness: the process answers")
    async def healthz():
        return Health(status="ok")

    @app.get("/readyz", response_model=ModelInfo, responses={503: {"model": ErrorBody}},
             summary="Readiness: the model is loaded and the batcher runs")
    async def readyz():
        if draining or not batcher.running:
            return JSONResponse({"detail": "not ready"}, status_code=503)
        return info

    @app.get("/metrics", dependencies=deps, responses={200: {"content": {"text/plain": {}}}, 401: {"model": ErrorBody}},
             summary="Prometheus metrics")
    async def prometheus_metrics():
        metrics.queue_depth.set(batcher.depth())
        metrics.pixels_in_flight.set(budget.in_use)
        return Response(metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    return app
