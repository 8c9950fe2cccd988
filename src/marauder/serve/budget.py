"""Decoded pixels held by requests: one budget per request, one shared by every request in flight.

A JPEG of a few kilobytes can declare 6000x6000 pixels, and decoding it allocates 108 MB whatever
the file holds. So a request's header sizes are summed before anything is decoded: past
`serve.max_request_pixels` it gets 413; if it would take the pixels held by requests in flight past
`serve.max_inflight_pixels` it gets 503 with Retry-After, and the pixels are held until its response
is built. Decoded memory is then bounded by the shared budget, whatever clients send: BYTES_PER_PIXEL
bytes a pixel at the peak of decoding (the BGR result, 3, and OpenCV's decoder buffer beside it; measured
on a 6000x6000 PNG: 205 MB peak for a 103 MB image).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

BYTES_PER_PIXEL = 6  # what one decoded pixel costs at the peak of decoding


class BudgetExhausted(Exception):
    """The pixels in flight would pass the shared budget: the client should retry shortly."""


class PixelBudget:
    def __init__(self, limit: int):
        self.limit, self.in_use = int(limit), 0
        self._lock = threading.Lock()

    @contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        with self._lock:
            if self.in_use + pixels > self.limit:
                raise BudgetExhausted(f"{self.in_use} of {self.limit} decoded pixels are held by requests in "
                                      f"flight; this request needs {pixels} (serve.max_inflight_pixels)")
            self.in_use += pixels
        try:
            yield
        finally:
            with self._lock:
                self.in_use -= pixels
