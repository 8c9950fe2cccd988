# Marauder cloud inference service: `python -m marauder.serve` (same as `marauder serve`) over a
# deployment package made by `marauder export --package`. Builds from the repository alone:
#   docker build -t marauder-serve .
#   docker run -p 8080:8080 -e MARAUDER_API_KEYS=sha256:<hex> \
#     -v $PWD/checkpoints/tensorrt:/packages:ro marauder-serve
# Only the base install (the edge runtime) and the serve extra: `pip install .[serve]`, no torch.
# See docs/SERVING.md.
FROM python:3.11-slim AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=8080

WORKDIR /app
# The package source only (tests, docs, bench and the training code's data stay out; see .dockerignore)
COPY pyproject.toml README.md LICENSE /app/
COPY src/marauder /app/src/marauder
# On a GPU host swap onnxruntime for onnxruntime-gpu after this (the runtime then uses CUDA)
RUN pip install "/app[serve]" \
    && rm -rf /app/build /app/src/*.egg-info \
    && groupadd --system --gid 10001 marauder \
    && useradd --system --uid 10001 --gid marauder --home-dir /app --shell /usr/sbin/nologin marauder

USER 10001:10001
EXPOSE 8080

# Liveness without curl (not in the slim image): the process answers /healthz on $PORT.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8080'), timeout=4)"]

# The package path can be a folder or the .tar.gz (unpacked to /tmp). Cloud Run: mount the GCS
# bucket at /packages (docs/DEPLOYMENT_GUIDE.md). Keys: MARAUDER_API_KEYS or serve.api_keys_file.
ENTRYPOINT ["python", "-m", "marauder.serve", "--workspace", "/tmp"]
CMD ["--package", "/packages/nano_deployment.tar.gz"]
