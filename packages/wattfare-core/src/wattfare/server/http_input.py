"""Reading what a client sent, defensively: bounded bodies and bearer credentials."""

from __future__ import annotations

from starlette.requests import ClientDisconnect, Request

from wattfare.server.errors import ApiError, invalid


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it exceeds `limit` bytes (never read whole first)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        # ASCII digits only (`'7²'.isdigit()` is true); the whitespace around a field value is not part of it.
        declared = declared.strip(" \t")
        if not (declared.isascii() and declared.isdigit()):
            raise invalid("Content-Length is not a number.")
        if int(declared) > limit:
            raise invalid(f"The request body exceeds the {limit}-byte limit.", status=413)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise invalid(f"The request body exceeds the {limit}-byte limit.", status=413)
            chunks.append(chunk)
    except ClientDisconnect:
        raise invalid("The client went away before sending the whole body.") from None
    return b"".join(chunks)


def bearer(request: Request) -> str:
    """The bearer credential, or a 401 explaining what is missing."""
    header = request.headers.get("authorization", "")
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise ApiError("auth", "Missing credentials: send 'Authorization: Bearer <key>'.")
    return credential.strip()
