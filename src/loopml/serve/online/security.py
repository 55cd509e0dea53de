"""Request safety: body size limits (also after decompression), admin bearer tokens.

Model names reach the registry and the artifact store, so they are checked with
:func:`loopml.core.names.check_name` before use; this module guards the rest of the
request.
"""

from __future__ import annotations

import hmac
import zlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from loopml.core.errors import PayloadTooLargeError, UnauthorizedError, ValidationError

Receive = Callable[[], Awaitable[dict[str, Any]]]


def scope_headers(scope: Mapping[str, Any]) -> dict[str, str]:
    """ASGI headers as a lower-case dict (the last value wins)."""
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())}


async def read_body(receive: Receive, headers: Mapping[str, str], limit: int) -> bytes:
    """The whole request body, refused with 413 as soon as it passes ``limit`` bytes.

    ``Content-Encoding: gzip``/``deflate`` bodies are inflated with the same limit, so a
    small compressed bomb cannot expand past it.
    """
    declared = headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise ValidationError(f"Content-Length {declared!r} is not a number") from None
        if size > limit:
            raise PayloadTooLargeError(_too_large(size, limit), limit=limit)
    chunks: list[bytes] = []
    total = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ValidationError("client disconnected before sending the whole body")
        chunk = message.get("body", b"")
        total += len(chunk)
        if total > limit:
            raise PayloadTooLargeError(_too_large(total, limit), limit=limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    encoding = headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding in ("gzip", "deflate"):
        return _inflate(body, encoding, limit)
    raise ValidationError(
        f"Content-Encoding {encoding!r} is not supported; use gzip, deflate or none",
        field="content-encoding",
    )


def _inflate(body: bytes, encoding: str, limit: int) -> bytes:
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise ValidationError(f"body is not valid {encoding} data ({exc})") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise PayloadTooLargeError(
            f"decompressed body is over the {limit}-byte limit; send smaller batches", limit=limit
        )
    return out


def _too_large(size: int, limit: int) -> str:
    return (
        f"request body of {size} bytes is over the {limit}-byte limit (serve.max_body_bytes); "
        "send smaller batches or raise the limit"
    )


def check_admin(headers: Mapping[str, str], token: str | None, env_name: str) -> None:
    """Require ``Authorization: Bearer <token>`` matching the configured admin token.

    >>> check_admin({"authorization": "Bearer s3cret"}, "s3cret", "LOOPML_ADMIN_TOKEN")
    >>> check_admin({}, "s3cret", "LOOPML_ADMIN_TOKEN")
    Traceback (most recent call last):
    ...
    loopml.core.errors.UnauthorizedError: admin route needs the header 'Authorization: Bearer ...'
    """
    if not token:
        raise UnauthorizedError(
            f"admin routes are disabled: set the environment variable {env_name} to a secret "
            "token before starting the server"
        )
    value = headers.get("authorization", "")
    scheme, _, given = value.partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise UnauthorizedError("admin route needs the header 'Authorization: Bearer ...'")
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise UnauthorizedError("admin token is not valid")
