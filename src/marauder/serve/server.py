"""Load the package, check the keys, warm the model up, then run uvicorn (one process, one model)."""

from __future__ import annotations

import json
import os

import numpy as np

from ..config.sections.deploy import ServeConfig
from ..errors import ConfigError, MarauderError
from ..log import get_logger
from .keys import load_keys
from .package import LoadedPackage, load_package

log = get_logger("serve")


def build_service(cfg: ServeConfig, package_source, environ=None):
    """(FastAPI app, LoadedPackage), or a MarauderError naming what to fix."""
    from .app import create_app

    keys = load_keys(cfg.api_keys_env, cfg.api_keys_file, environ)
    if cfg.require_api_key and not len(keys):
        raise ConfigError(f"no API keys: set ${cfg.api_keys_env} (comma-separated, 'sha256:<hex>' or raw) or "
                          "serve.api_keys_file; `marauder serve --hash-key` prints a key's sha256 form. "
                          "serve.require_api_key=false only behind another authenticating proxy")
    if not cfg.require_api_key:
        log.warning("serve.require_api_key is false: anyone who reaches the port can use the model")
    loaded = load_package(package_source, backend=cfg.backend, threads=cfg.threads,
                          apply_thresholds=cfg.apply_thresholds)
    warm_up(loaded)
    return create_app(loaded.pipeline, cfg, keys), loaded


def warm_up(loaded: LoadedPackage) -> None:
    """One grey frame through the pipeline so the first request does not pay for session start-up."""
    size = loaded.pipeline.config.imgsz
    try:
        loaded.pipeline.predict([np.full((size, size, 3), 114, np.uint8)])
    except Exception as exc:  # a package that cannot run one frame must not start serving
        raise MarauderError(f"the package failed on a test frame: {exc}", file=str(loaded.folder)) from None


def listen_port(cfg: ServeConfig, cli_port: int | None, environ=None) -> int:
    """--port, else $PORT (Cloud Run sets it), else serve.port."""
    environ = os.environ if environ is None else environ
    if cli_port:
        return int(cli_port)
    if environ.get("PORT"):
        try:
            return int(environ["PORT"])
        except ValueError:
            raise ConfigError(f"$PORT is not a port number: {environ['PORT']!r}") from None
    return cfg.port


def run_server(cfg: ServeConfig, package_source, port: int, log_level: str = "info") -> int:
    import uvicorn

    app, loaded = build_service(cfg, package_source)
    log.info("package %s ready: %s", loaded.source, json.dumps({"backend": loaded.pipeline.backend_kind,
                                                                "classes": len(loaded.pipeline.class_names)}))
    from .protocol import with_header_timeout

    uvicorn.run(app, host=cfg.host, port=port, log_level=log_level, access_log=False, server_header=False,
                timeout_graceful_shutdown=10, http=with_header_timeout(cfg.header_timeout_s),
                timeout_keep_alive=cfg.keep_alive_s, limit_concurrency=cfg.max_connections)
    return 0
