"""The official FathomNet client (fathomnet-py), made safe for long unattended downloads.

fathomnet-py sends every request through one `requests.Session` (`fathomnet.api.SESSION`) with no
timeout, and turns any error status into a bare `ValueError`. We mount an adapter that adds a
timeout and a connection pool sized for our thread pool, and a response hook that raises
`HttpStatusError` (URL, status, Retry-After) so the retry policy can tell a 429 from a 404.
Base URLs come from the client's own variables, FATHOMNET_API_URL and FATHOMNET_WORMS_API_URL,
re-read at configure time (the client reads them once, at import).
"""

from __future__ import annotations

import os
import threading
import urllib.request
from dataclasses import dataclass

import requests
from requests.adapters import HTTPAdapter

from .retry import HttpStatusError, RetryPolicy, parse_retry_after


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


def make_session(timeout: float, pool_size: int, session: requests.Session | None = None) -> requests.Session:
    if session is None:
        session = requests.Session()
        # requests re-scans the whole environment for proxies on every request (~1-2 ms of CPU
        # each, a quarter of our per-image cost); with no proxy configured there is nothing to find,
        # so read the one other thing it takes from there, the CA bundle, once.
        if not urllib.request.getproxies():
            session.trust_env = False
            session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    adapter = _TimeoutAdapter(timeout, pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    hooks = session.hooks.setdefault("response", [])
    if _raise_for_status not in hooks:
        hooks.append(_raise_for_status)
    return session


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
            make_session(timeout, pool_size, fn_api.SESSION)
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
