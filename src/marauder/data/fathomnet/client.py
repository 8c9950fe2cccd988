"""The official FathomNet client (fathomnet-py), made safe for long unattended downloads.

fathomnet-py sends every request through one `requests.Session` (`fathomnet.api.SESSION`) with no
timeout, and turns any error status into a bare `ValueError`. We mount an adapter that adds a
timeout and a connection pool sized for our thread pool, and a response hook that raises
`HttpStatusError` (URL, status, Retry-After) so the retry policy can tell a 429 from a 404.
Base URLs come from the client's own variables, FATHOMNET_API_URL and FATHOMNET_WORMS_API_URL,
re-read at configure time (the client reads them once, at import).

The images themselves are fetched by `ImageHost`, on urllib3 directly: thousands of requests,
where requests' own per-request work would be half the CPU of the download.
"""

from __future__ import annotations

import contextlib
import os
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter

from .retry import HttpStatusError, RetryPolicy, parse_retry_after

MAX_REDIRECTS = 10
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class _TimeoutAdapter(HTTPAdapter):
    def __init__(self, timeout: float, pool_size: int):
        self._timeout = timeout
        super().__init__(pool_connections=4, pool_maxsize=pool_size, max_retries=0)

    def send(self, request, **kwargs):
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._timeout
        return super().send(request, **kwargs)


def _raise_for_status(response: requests.Response, *args, **kwargs) -> None:
    if response.status_code >= 400:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        response.close()
        raise HttpStatusError(response.url, response.status_code, retry_after)


def configure_session(session: requests.Session, timeout: float, pool_size: int) -> None:
    """fathomnet-py's session: a timeout on every request, a pool sized for our threads, and error
    statuses as HttpStatusError."""
    adapter = _TimeoutAdapter(timeout, pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    hooks = session.hooks.setdefault("response", [])
    if _raise_for_status not in hooks:
        hooks.append(_raise_for_status)


def _ca_bundle() -> str:
    """The CA certificates requests would use: REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, else certifi's."""
    import certifi

    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or certifi.where()


class ImageHost:
    """Image downloads straight through urllib3 (requests' per-request work, settings merge, cookie jar
    and hooks, is half the CPU of fetching one image, and a fast download is CPU-bound).
    It honours what requests honours: HTTP(S)_PROXY and NO_PROXY, REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE;
    redirects are followed; a status >= 400 is an HttpStatusError, as for the API calls."""

    def __init__(self, timeout: float, pool_size: int):
        import urllib3

        options = dict(maxsize=pool_size, retries=False, timeout=urllib3.Timeout(connect=timeout, read=timeout),
                       cert_reqs="CERT_REQUIRED", ca_certs=_ca_bundle())
        self._direct = urllib3.PoolManager(**options)
        self._proxies = {scheme: urllib3.ProxyManager(url, **options)
                         for scheme, url in urllib.request.getproxies().items() if scheme in ("http", "https")}

    def _manager(self, url: str):
        parts = urlsplit(url)
        proxy = self._proxies.get(parts.scheme)
        if proxy is None or urllib.request.proxy_bypass(parts.netloc):
            return self._direct
        return proxy

    @contextlib.contextmanager
    def get(self, url: str) -> Iterator:
        """A streaming urllib3 response for GET `url`. Its connection goes back to the pool only when the
        body was read to the end; anything else (an error mid-body, an error status) closes it."""
        for _ in range(MAX_REDIRECTS + 1):
            resp = self._manager(url).urlopen("GET", url, preload_content=False, redirect=False)
            if resp.status not in _REDIRECTS or not resp.headers.get("Location"):
                break
            url = urljoin(url, resp.headers["Location"])
            resp.drain_conn()
            resp.release_conn()
        else:
            raise HttpStatusError(url, resp.status)  # a redirect loop: permanent, not retried
        try:
            if resp.status >= 400:
                raise HttpStatusError(url, resp.status, parse_retry_after(resp.headers.get("Retry-After")))
            yield resp
        finally:
            if not resp.isclosed():
                resp.close()  # half-read: never hand this connection to the next image
            resp.release_conn()


_configure_lock = threading.Lock()


@dataclass(frozen=True)
class FathomNetClient:
    """Thin, retrying wrappers over the fathomnet-py calls the downloader needs."""

    api_url: str
    worms_url: str
    policy: RetryPolicy

    @classmethod
    def configure(cls, policy: RetryPolicy, timeout: float, pool_size: int) -> FathomNetClient:
        import fathomnet.api as fn_api
        from fathomnet.api import worms

        with _configure_lock:
            fn_api.EndpointManager.ROOT = fn_api.get_api_url().rstrip("/")
            worms.Worms.ROOT = worms.get_worms_api_url().rstrip("/")
            configure_session(fn_api.SESSION, timeout, pool_size)
        return cls(fn_api.EndpointManager.ROOT, worms.Worms.ROOT, policy)

    def _call(self, fn, *args):
        return self.policy.call(lambda: fn(*args))

    def known_concepts(self) -> list[str]:
        from fathomnet.api import boundingboxes

        return [c for c in self._call(boundingboxes.find_concepts) if c]

    def descendants(self, name: str) -> list[str]:
        """WoRMS descendants (names only); [] when WoRMS does not know the name."""
        from fathomnet.api import worms

        try:
            return list(self._call(worms.get_descendants_names, name) or [])
        except HttpStatusError as exc:
            if exc.status == 404:
                return []
            raise

    def scientific_name(self, name: str) -> str | None:
        """What WoRMS calls `name` (a common name resolves to its taxon); None when it cannot say.
        Best effort: any error status (even after retries) means "unknown", not a failed run."""
        from fathomnet.api import worms

        try:
            node = self._call(worms.get_info, name)
        except HttpStatusError:
            return None
        return node.name or None

    def find_images(self, constraints):
        """One page of images (AImageDTO) for GeoImageConstraints with limit/offset set."""
        from fathomnet.api import images

        return self._call(images.find, constraints)
