"""One retry policy for every network call: exponential backoff with full jitter, Retry-After honoured.

Retried: HTTP 408, 429 and 5xx, connection errors, timeouts and truncated bodies. Anything else (404, a
bad request) fails at once: retrying cannot fix it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TypeVar

T = TypeVar("T")
RETRY_STATUSES = frozenset({408, 429})  # plus every 5xx (proxies send 507, 520-524, ...)


class HttpStatusError(Exception):
    """A response with status >= 400 (after which the client would have raised a vague ValueError)."""

    def __init__(self, url: str, status: int, retry_after: float | None = None):
        self.url = url
        self.status = status
        self.retry_after = retry_after
        super().__init__(f"HTTP {status} from {url}")


class TransientError(Exception):
    """A failure worth retrying that is not an HTTP status: truncated body, checksum mismatch."""


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After is either seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def is_retryable(exc: BaseException) -> bool:
    import requests
    from urllib3.exceptions import HTTPError as Urllib3Error
    from urllib3.exceptions import LocationValueError

    if isinstance(exc, HttpStatusError):
        return exc.status in RETRY_STATUSES or 500 <= exc.status < 600
    if isinstance(exc, LocationValueError):  # a malformed URL: no retry fixes it
        return False
    # requests' errors for the API calls; urllib3's (connection, timeout, cut body) for the images
    return isinstance(exc, TransientError | requests.ConnectionError | requests.Timeout
                      | requests.exceptions.ChunkedEncodingError | requests.exceptions.ContentDecodingError
                      | Urllib3Error)


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 5
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 30.0
    max_retry_after_seconds: float = 60.0

    def delay(self, attempt: int, exc: BaseException, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number `attempt` (0-based): the server's Retry-After when
        given (capped), else full jitter over an exponentially growing window."""
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return min(float(retry_after), self.max_retry_after_seconds)
        window = min(self.max_backoff_seconds, self.backoff_seconds * (2 ** attempt))
        return (rng or random).uniform(0, window)

    def call(self, fn: Callable[[], T], *, sleep: Callable[[float], None] = time.sleep,
             on_retry: Callable[[int, BaseException, float], None] | None = None) -> T:
        """Run `fn`, retrying retryable failures up to `max_retries` times; re-raise the last one."""
        attempt = 0
        while True:
            try:
                return fn()
            except Exception as exc:
                if attempt >= self.max_retries or not is_retryable(exc):
                    raise
                wait = self.delay(attempt, exc)
                if on_retry is not None:
                    on_retry(attempt + 1, exc, wait)
                sleep(wait)
                attempt += 1
