"""The retry policy: what is retried, how long it waits, when it gives up."""

from __future__ import annotations

import random
import time
from email.utils import formatdate

import pytest
import requests
import urllib3

from marauder.data.fathomnet.retry import HttpStatusError, RetryPolicy, TransientError, parse_retry_after


@pytest.mark.parametrize("value, expected", [
    ("3", 3.0), ("0.5", 0.5), ("-2", 0.0), (None, None), ("", None), ("soon", None),
])
def test_parse_retry_after_seconds(value, expected):
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date():
    assert 8 <= parse_retry_after(formatdate(time.time() + 10, usegmt=True)) <= 10


@pytest.mark.parametrize("exc, retried", [
    (HttpStatusError("u", 500), True), (HttpStatusError("u", 503), True), (HttpStatusError("u", 429), True),
    (HttpStatusError("u", 520), True), (HttpStatusError("u", 507), True),
    (HttpStatusError("u", 404), False), (HttpStatusError("u", 400), False), (requests.ConnectionError(), True),
    (requests.ReadTimeout(), True), (requests.exceptions.ChunkedEncodingError(), True),
    (TransientError("sha256 mismatch"), True), (ValueError("bug"), False),
    # the image fetches go through urllib3 directly
    (urllib3.exceptions.ProtocolError("Connection broken: IncompleteRead"), True),
    (urllib3.exceptions.ReadTimeoutError(None, "u", "Read timed out."), True),
    (urllib3.exceptions.NewConnectionError(None, "Connection refused"), True),
    (urllib3.exceptions.LocationParseError("http://[bad"), False), (HttpStatusError("u", 302), False),
])
def test_what_is_retried(exc, retried):
    calls, sleeps = [], []

    def fn():
        calls.append(1)
        raise exc

    with pytest.raises(type(exc)):
        RetryPolicy(max_retries=3, backoff_seconds=0.1).call(fn, sleep=sleeps.append)
    assert len(calls) == (4 if retried else 1)
    assert len(sleeps) == (3 if retried else 0)


def test_succeeds_after_transient_failures():
    outcomes = [HttpStatusError("u", 502), requests.ConnectionError(), "ok"]
    seen = []

    def fn():
        o = outcomes.pop(0)
        if isinstance(o, Exception):
            raise o
        return o

    policy = RetryPolicy(max_retries=5, backoff_seconds=0.1)
    assert policy.call(fn, sleep=lambda s: None, on_retry=lambda n, e, w: seen.append(n)) == "ok"
    assert seen == [1, 2]


def test_delay_uses_retry_after_capped_else_jittered_exponential():
    policy = RetryPolicy(backoff_seconds=0.5, max_backoff_seconds=4, max_retry_after_seconds=10)
    assert policy.delay(0, HttpStatusError("u", 429, retry_after=2.5)) == 2.5
    assert policy.delay(0, HttpStatusError("u", 429, retry_after=3600)) == 10
    rng = random.Random(0)
    for attempt, window in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (8, 4.0)]:
        delays = [policy.delay(attempt, HttpStatusError("u", 503), rng) for _ in range(200)]
        assert 0 <= min(delays) and max(delays) <= window and max(delays) > window * 0.8  # full jitter
