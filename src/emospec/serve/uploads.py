"""Reading an upload from an HTTP request without ever holding more than the limit.

Two request shapes are accepted:

* ``multipart/form-data`` with the audio in the field ``file`` (what browsers
  and ``curl -F file=@clip.wav`` send). Starlette's parser streams the part
  into a :class:`tempfile.SpooledTemporaryFile` (memory up to 1 MB, then an
  anonymous temp file that disappears when closed); the form is always closed
  before returning.
* any other body: the raw audio bytes (``curl --data-binary @clip.wav``).

The size limit is checked on ``Content-Length`` up front and again on every
received chunk, so a lying or chunked client is cut off as soon as it passes
the limit; nothing unbounded is read into memory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.types import Message

from ..errors import ApiError

__all__ = ["ApiError", "Upload", "read_upload", "MULTIPART_OVERHEAD_BYTES"]

MULTIPART_OVERHEAD_BYTES = 16 * 1024
"""Room for multipart boundaries and part headers on top of the file size limit."""

_MAX_NAME_CHARS = 120


@dataclass(frozen=True)
class Upload:
    """The uploaded bytes and a printable, sanitised name (the client's file name or ``<request body>``)."""

    data: bytes
    name: str


def _too_large(limit_bytes: int, what: str) -> ApiError:
    return ApiError(413, "upload too large", f"{what} exceeds the limit of {limit_bytes} bytes ({limit_bytes / 2**20:.3g} MB)")


def safe_name(name: str | None) -> str:
    """The base name of a client-supplied file name, printable and at most 120 characters."""
    base = os.path.basename((name or "").replace("\\", "/"))
    base = "".join(c if c.isprintable() else "?" for c in base)[:_MAX_NAME_CHARS]
    return base or "<upload>"


async def read_upload(request: Request, limit_bytes: int, *, field: str = "file") -> Upload:
    """Read the audio of ``request`` (multipart field ``field`` or raw body), at most ``limit_bytes``.

    Raises
    ------
    ApiError
        413 past the limit (declared or streamed), 422 for an empty body, a
        malformed multipart body, or one without the ``field`` file part.
    """
    multipart = request.headers.get("content-type", "").lower().startswith("multipart/form-data")
    allowed = limit_bytes + (MULTIPART_OVERHEAD_BYTES if multipart else 0)
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise ApiError(400, "bad request", f"Content-Length {declared[:40]!r} is not a number")
        if int(declared) > allowed:
            raise _too_large(limit_bytes, f"the declared body of {int(declared)} bytes")
    if multipart:
        return await _read_multipart(request, limit_bytes, allowed, field)
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > allowed:
            raise _too_large(limit_bytes, "the request body")
    if not buf:
        raise ApiError(422, "empty body", "the request has no audio (0 bytes); send a file as multipart field "
                       f"{field!r} or as the raw body")
    return Upload(bytes(buf), "<request body>")


async def _read_multipart(request: Request, limit_bytes: int, allowed: int, field: str) -> Upload:
    seen = 0

    async def receive() -> Message:
        nonlocal seen
        message = await request.receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > allowed:
                raise _too_large(limit_bytes, "the multipart body")
        return message

    limited = Request(request.scope, receive)
    try:
        async with limited.form(max_files=1, max_fields=8, max_part_size=4096) as form:
            part = form.get(field)
            if isinstance(part, str):
                raise ApiError(422, "missing file", f"the part {field!r} has no filename, so it is a text field; "
                               "send the audio as a file upload")
            if not isinstance(part, UploadFile):
                got = sorted(set(form.keys()))
                raise ApiError(422, "missing file", f"the multipart body has no file part named {field!r} "
                               f"(fields: {got or 'none'})")
            data = await part.read(limit_bytes + 1)
            name = safe_name(part.filename)
    except (HTTPException, MultiPartException) as e:
        reason = getattr(e, "detail", None) or getattr(e, "message", "") or type(e).__name__
        raise ApiError(422, "malformed multipart body", str(reason)) from e
    if len(data) > limit_bytes:
        raise _too_large(limit_bytes, f"the file {name!r}")
    if not data:
        raise ApiError(422, "empty body", f"the uploaded file {name!r} is empty (0 bytes)")
    return Upload(data, name)
