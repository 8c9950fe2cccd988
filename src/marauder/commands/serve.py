"""`marauder serve`: the deployment package as an HTTP service (FastAPI + uvicorn), see docs/SERVING.md."""

from __future__ import annotations

import sys
from pathlib import Path

HELP = "serve a deployment package over HTTP: /v1/detect, /v1/detect/batch, /healthz, /readyz, /metrics"


def add_arguments(parser) -> None:
    parser.add_argument("--package", type=Path, default=None,
                        help="package folder or .tar.gz (default: serve.package, else "
                             "checkpoints/tensorrt/nano_deployment)")
    parser.add_argument("--host", default=None, help="bind address (default: serve.host)")
    parser.add_argument("--port", type=int, default=None, help="port (default: $PORT, else serve.port)")
    parser.add_argument("--check", action="store_true",
                        help="load the package, check the keys, run one test frame, print the model info, exit")
    parser.add_argument("--hash-key", action="store_true",
                        help="read an API key from stdin and print its sha256 form for MARAUDER_API_KEYS")


def _log_to_stdout(level: str) -> None:
    """Plain one-line records on stdout: what Cloud Logging and `docker logs` want (no wrapping, no colour)."""
    import logging

    logger = logging.getLogger("marauder")
    logger.setLevel(level)
    logger.propagate = False
    if not any(getattr(h, "_marauder_serve", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler._marauder_serve = True
        logger.addHandler(handler)


def run(args, ctx) -> int:
    if args.hash_key:
        from ..errors import MarauderError
        from ..serve.keys import hash_key

        key = sys.stdin.readline().strip()
        if len(key) < 16:
            raise MarauderError("give a key of at least 16 characters on stdin: "
                                "echo -n 'KEY' | marauder serve --hash-key")
        print(hash_key(key))
        return 0
    cfg = ctx.config.serve
    if args.host:
        cfg = cfg.model_copy(update={"host": args.host})
    ws = ctx.workspace
    package = ws.path(args.package) if args.package else (ws.path(cfg.package) if cfg.package else ws.deployment_dir)
    from ..serve.server import build_service, listen_port, run_server

    port = listen_port(cfg, args.port)
    if args.check:
        app, loaded = build_service(cfg, package)
        print(f"package {loaded.folder}: backend {loaded.pipeline.backend_kind}, "
              f"classes {', '.join(loaded.pipeline.class_names)}; would listen on {cfg.host}:{port}")
        return 0
    _log_to_stdout(ctx.config.logging.level)
    return run_server(cfg, package, port, log_level=ctx.config.logging.level.lower())
