"""What a request may be: its size, type, parts, and how long its headers and body may take.

The server faces any client on the network; every limit is a bounded answer (4xx), never a
hung worker or memory growth.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import HTTPException

MAX_UPLOAD_BYTES = 10 * 1024 * 1024


MULTIPART_SLACK = 64 * 1024  # headers and boundaries around the file in a multipart body


BODY_TIMEOUT_S = 30.0  # a 10 MiB upload at 3 Mbit/s; slower or stalled clients get a 408


MAX_FILES = 1  # one image per request: the page sends each file in a request of its own


MAX_FIELDS = 8  # other form fields, which the API ignores


MAX_CONNECTIONS = 64  # uvicorn answers 503 beyond this, so idle connections cannot pile up


HEADER_TIMEOUT_S = 10.0  # a request's headers must be complete this long after it may start


ALLOWED_TYPES = {
    "image/jpeg",
    "image/png",
    "image/bmp",
    "image/x-ms-bmp",
    "image/tiff",
    "image/webp",
}


def _too_large(limit: int) -> HTTPException:
    return HTTPException(
        413, f"upload too large: the limit is {limit / 1024 / 1024:.1f} MiB per image"
    )


class UploadLimit:
    """ASGI middleware: refuse bodies over the limit from Content-Length, or while streaming.

    The check runs before the multipart parser spools anything to disk.
    """

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes + MULTIPART_SLACK
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await _json_response(scope, receive, send, 413, _too_large(self.max_bytes).detail)
            return
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise _too_large(self.max_bytes)
            return message

        await self.app(scope, limited_receive, send)


class BodyTimeout:
    """ASGI middleware: the whole request body must arrive within `seconds`, or 408.

    uvicorn (h11) times out idle keep-alive connections but not a body that trickles in or
    stalls. Such a client never blocks the others (the wait is on the event loop), but without
    a deadline each one would hold a connection and a half-spooled upload for ever. The 408
    closes the connection, since the rest of its body will not be read.
    """

    def __init__(self, app, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.seconds
        body_done = False

        async def timed_receive():
            nonlocal body_done
            if body_done:  # later receives wait for a disconnect: not the body's deadline
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise HTTPException(
                    408,
                    f"request body not received within {self.seconds:g} s; "
                    "send the upload again from a faster connection",
                    headers={"Connection": "close"},
                ) from None
            body_done = message["type"] != "http.request" or not message.get("more_body")
            return message

        await self.app(scope, timed_receive, send)


async def _json_response(scope, receive, send, status: int, detail: str) -> None:
    from starlette.responses import JSONResponse

    await JSONResponse({"detail": detail}, status_code=status)(scope, receive, send)


def check_type(content_type: str | None, filename: str | None) -> None:
    """415 unless the part is a supported image type (or octet-stream with an image extension)."""
    from blastscan.data import IMAGE_EXTENSIONS

    kind = (content_type or "").split(";")[0].strip().lower()
    if kind in ALLOWED_TYPES:
        return
    if (
        kind in ("", "application/octet-stream")
        and Path(filename or "").suffix.lower() in IMAGE_EXTENSIONS
    ):
        return
    raise HTTPException(
        415, f"unsupported upload type {kind or 'none'!r}; send JPEG, PNG, BMP, TIFF or WebP"
    )


def header_deadline_protocol(seconds: float = HEADER_TIMEOUT_S):
    """uvicorn's h11 HTTP protocol, closing connections whose request headers come too slowly.

    Why by hand: uvicorn has no timeout on receiving a request's headers (its keep-alive timer
    restarts with every byte), and the app cannot help, as it only runs once the headers are
    complete. So a client trickling a header line a byte at a time (slowloris) held a connection
    for good, and 64 of them locked everyone out. The deadline starts when a connection opens
    and again after each response (the next request on a kept-alive connection); the headers
    arriving disarm it; the body has its own deadline (`BodyTimeout`).
    """
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderDeadlineProtocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_header_deadline()

        def handle_events(self) -> None:
            super().handle_events()
            if self.cycle is not None and not self.cycle.response_complete:
                self._disarm_header_deadline()  # a request's headers are in

        def on_response_complete(self) -> None:
            self._arm_header_deadline()  # before super(): it may start a pipelined request
            super().on_response_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_header_deadline()
            super().connection_lost(exc)

        def _arm_header_deadline(self) -> None:
            self._disarm_header_deadline()
            self._header_timer = self.loop.call_later(seconds, self._headers_too_slow)

        def _disarm_header_deadline(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            waiting = self.cycle is None or self.cycle.response_complete
            if waiting and not self.transport.is_closing():
                self.transport.close()

    return HeaderDeadlineProtocol
