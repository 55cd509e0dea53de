"""Raw ASGI responses for the hot routes, and the one error body every route answers.

Every error is ``{"error": "<message>", ...fields}`` with the error's status code; an
unexpected exception is a 500 with a short message (details go to the server log).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson

from loopml.core.errors import LoopmlError

log = logging.getLogger("loopml.serve.online")

Send = Callable[[dict[str, Any]], Awaitable[None]]

_JSON = (b"content-type", b"application/json")


async def send_bytes(
    send: Send,
    status: int,
    body: bytes,
    headers: Iterable[tuple[bytes, bytes]] = (),
    content_type: bytes = b"application/json",
) -> None:
    """Send one complete response."""
    raw = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    raw.extend(headers)
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def send_json(
    send: Send, status: int, doc: Any, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    await send_bytes(send, status, orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY), headers)


def error_status_body(exc: BaseException) -> tuple[int, dict[str, Any]]:
    """Map any exception to ``(status, {"error": ...})`` -- once, for every transport."""
    if isinstance(exc, LoopmlError):
        return exc.status_code, exc.to_dict()
    log.exception("unexpected error while serving a request", exc_info=exc)
    return 500, {"error": f"internal error ({type(exc).__name__}); see the server log"}


async def send_error(send: Send, exc: BaseException) -> None:
    status, body = error_status_body(exc)
    await send_json(send, status, body)
