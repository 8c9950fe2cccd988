"""Slow clients: a deadline for a request's headers.

uvicorn's keep-alive timeout only runs between requests; a client that connects and trickles its
headers in a byte at a time (or sends nothing) holds a connection, and a slot of `limit_concurrency`,
for as long as it likes. This protocol gives every request `header_timeout` seconds from its first
byte (or from the connection, for the first request) to deliver complete headers, then closes it.
"""

from __future__ import annotations

from uvicorn.protocols.http.h11_impl import H11Protocol

from ..log import get_logger

log = get_logger("serve")


def with_header_timeout(seconds: float) -> type[H11Protocol]:
    """An H11Protocol class (for uvicorn's `http=`) that closes connections whose headers are late."""

    class HeaderTimeoutProtocol(H11Protocol):
        header_timeout = seconds

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_late)

        def data_received(self, data: bytes) -> None:
            waiting = self.cycle is None or self.cycle.response_complete
            if waiting and getattr(self, "_header_timer", None) is None:  # a new request starts arriving
                self._header_timer = self.loop.call_later(self.header_timeout, self._headers_late)
            super().data_received(data)
            if self.cycle is not None and not self.cycle.response_complete:  # headers complete: disarm
                self._cancel_header_timer()

        def connection_lost(self, exc) -> None:
            self._cancel_header_timer()
            super().connection_lost(exc)

        def _cancel_header_timer(self) -> None:
            timer = getattr(self, "_header_timer", None)
            if timer is not None:
                timer.cancel()
                self._header_timer = None

        def _headers_late(self) -> None:
            self._header_timer = None
            if self.cycle is None or self.cycle.response_complete:
                log.info("closing a connection from %s: no complete request headers within %.0f s",
                         "{}:{}".format(*self.client) if self.client else "?", self.header_timeout)
                self.transport.close()

    return HeaderTimeoutProtocol
