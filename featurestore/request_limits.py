"""Bounds on what one HTTP request may send: its URL, its headers and its body.

:class:`RequestLimits` is a pure ASGI middleware (no framework: it runs in front of the datamart
API and of the registry UI alike, which may not import each other). It answers, without calling
the app: 414 to a path and query string longer than ``datamart.max_url_bytes``, 431 to headers
longer than ``datamart.max_header_bytes``, 413 to a body whose ``Content-Length`` exceeds the
limit. A body sent without ``Content-Length`` (chunked) is counted as the app reads it; past the
limit the app reads no more, whatever it answered is dropped, and the caller gets the 413.

Every refusal is the API's JSON error body, ``{"error": "InvalidRequestError", "message": ...}``,
the message naming the limit, the size sent and the setting of ``featurestore.yaml`` to change.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from featurestore.config import CONFIG_FILE_NAME, DatamartConfig

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _BodyTooLarge(Exception):
    """Raised to the app by ``receive`` once a chunked body passes the limit."""


def _size(n: int) -> str:
    for unit, factor in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= factor:
            return f"{n:,} bytes ({n / factor:.3g} {unit})"
    return f"{n:,} bytes"


class RequestLimits:
    """Refuses requests beyond ``config`` (see the module's text). ``is_upload(path)`` tells the
    paths that take an uploaded file, whose body may reach ``max_upload_bytes`` instead of
    ``max_body_bytes``."""

    def __init__(
        self, app: ASGIApp, *, config: DatamartConfig, is_upload: Callable[[str], bool] = lambda path: False
    ) -> None:
        self.app = app
        self.config = config
        self.is_upload = is_upload

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        config = self.config
        query = scope.get("query_string", b"")
        # As the request line gives them: path, '?', query string.
        url_bytes = len(scope.get("raw_path") or scope["path"].encode()) + (len(query) + 1 if query else 0)
        if url_bytes > config.max_url_bytes:
            message = (
                f"The request's path and query string are {url_bytes:,} bytes, beyond the limit of "
                f"{_size(config.max_url_bytes)}: send long values in a POST body, or raise datamart.max_url_bytes "
                f"in {CONFIG_FILE_NAME}"
            )
            await _refuse(send, 414, message)
            return
        declared: int | None = None
        header_bytes = 0
        for name, value in scope["headers"]:
            header_bytes += len(name) + len(value)
            if name == b"content-length":
                # More than 18 digits is more than any limit (and int() refuses 4,300 digits).
                declared = (int(value) if len(value) <= 18 else 10**18) if value.isdigit() else None
        if header_bytes > config.max_header_bytes:
            message = (
                f"The request's headers are {header_bytes:,} bytes, beyond the limit of "
                f"{_size(config.max_header_bytes)}: send fewer or shorter headers (cookies included), or raise "
                f"datamart.max_header_bytes in {CONFIG_FILE_NAME}"
            )
            await _refuse(send, 431, message)
            return
        upload = self.is_upload(scope["path"])
        limit = config.max_upload_bytes if upload else config.max_body_bytes
        setting = "datamart.max_upload_bytes" if upload else "datamart.max_body_bytes"
        what = "uploaded spine" if upload else "request body"
        if declared is not None:
            if declared > limit:
                message = (
                    f"The {what} is {declared:,} bytes (Content-Length), beyond the limit of {_size(limit)}: "
                    f"{_advice(upload)}, or raise {setting} in {CONFIG_FILE_NAME}"
                )
                await _refuse(send, 413, message)
                return
            # A server checks that a body matches its Content-Length: no need to count it.
            await self.app(scope, receive, send)
            return
        await self._counted(scope, receive, send, limit, setting, what, upload)

    async def _counted(
        self, scope: Scope, receive: Receive, send: Send, limit: int, setting: str, what: str, upload: bool
    ) -> None:
        """Runs the app on a body without Content-Length, counting what it reads."""
        received = 0
        over = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, over
            if over:
                raise _BodyTooLarge
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if over:
                return  # whatever the app makes of the unread body, the caller gets the 413
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not over or started:
                raise
        if over and not started:
            message = (
                f"The {what} was sent without a Content-Length and passed the limit of {_size(limit)} "
                f"(more than {received:,} bytes had arrived when reading stopped): {_advice(upload)}, or raise "
                f"{setting} in {CONFIG_FILE_NAME}"
            )
            await _refuse(send, 413, message)


def _advice(upload: bool) -> str:
    if upload:
        return "send a smaller spine (Parquet is several times smaller than CSV) or split it"
    return "send less (split the lookup; upload a large spine as a Parquet file to /v1/training-set/upload)"


async def _refuse(send: Send, status: int, message: str) -> None:
    body = orjson.dumps({"error": "InvalidRequestError", "message": message})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                # The body may be left unread: the connection cannot carry another request.
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
