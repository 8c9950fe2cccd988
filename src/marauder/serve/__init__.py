"""Cloud inference service: a deployment package served over HTTP through the edge runtime.

  keys        API keys: sha256 digests from env / a secret file, constant-time check
  images      upload checks: content type, size, header dimensions, truncation; then OpenCV decode
  batcher     micro-batching of concurrent requests into one runtime call
  metrics     Prometheus counters and histograms (own registry)
  package     a package folder or .tar.gz (safe extraction) -> the runtime's EdgePipeline
  app         the FastAPI application (endpoints, errors, security)
  server      run_server: load, warm up, uvicorn
"""
