"""Request-body size limits, enforced while the body streams in (a 413 before the app reads the body).

A declared ``Content-Length`` above the limit is refused without handing the request to the app; a
body without one (chunked) is counted chunk by chunk and refused as soon as it passes the limit.
Multipart (upload) requests get ``max_upload_bytes``, every other body ``max_json_bytes``, except the
JSON bodies of the paths matching ``json_overrides`` (prediction requests: ``max_predict_bytes``).

Before answering, the rest of the body is read and discarded ("lingering close", bounded to twice the
limit or 16 MiB, and 5 seconds): a client that sends its whole body before reading the answer (most do) would
otherwise see the connection reset instead of the 413. Bigger bodies get the 413 and a closed connection.

The limits of the JSON parser itself (nesting depth, digits of an integer, the text encoding) make
FastAPI answer a bare "There was an error parsing the body"; :func:`json_body_error` says which one
a body broke.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import sys
import time
from collections.abc import Sequence

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class _BodyTooLarge(Exception):
    pass


#: How long, and how much of, a rejected body is still read (and discarded) so the client gets the 413.
DRAIN_SECONDS = 5.0
DRAIN_MIN_BYTES = 16 * 1024 * 1024


async def _drain(receive: Receive, max_bytes: int, seconds: float = DRAIN_SECONDS) -> bool:
    """Read and discard the rest of the request body; True when it was read to its end."""
    end = time.monotonic() + seconds
    n = 0
    while n <= max_bytes:
        left = end - time.monotonic()
        if left <= 0:
            return False
        try:
            msg = await asyncio.wait_for(receive(), timeout=left)
        except TimeoutError:
            return False
        if msg["type"] != "http.request":
            return False
        n += len(msg.get("body", b""))
        if not msg.get("more_body", False):
            return True
    return False


def _human(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} bytes"


class BodyLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        max_upload_bytes: int,
        max_json_bytes: int,
        json_overrides: Sequence[tuple[str, int, str]] = (),
    ) -> None:
        """``json_overrides``: (path regex, limit, the setting's env name) for JSON bodies of other sizes."""
        self.app = app
        self.max_upload_bytes = max_upload_bytes
        self.max_json_bytes = max_json_bytes
        self.json_overrides = [(re.compile(p), n, env) for p, n, env in json_overrides]

    def _limit_for(self, scope: Scope) -> tuple[int, str]:
        content_type = ""
        for name, value in scope.get("headers") or ():
            if name == b"content-type":
                content_type = value.decode("latin-1").lower()
                break
        if content_type.startswith("multipart/"):
            return self.max_upload_bytes, "uploads are limited to {limit} (METALEARN_MAX_UPLOAD_BYTES)"
        path = scope.get("path", "")
        for pattern, limit, env in self.json_overrides:
            if pattern.match(path):
                return limit, f"request bodies here are limited to {{limit}} ({env})"
        return self.max_json_bytes, "request bodies are limited to {limit} (METALEARN_MAX_JSON_BYTES)"

    @staticmethod
    def _content_length(scope: Scope) -> int | None:
        for name, value in scope.get("headers") or ():
            if name == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return None
        return None

    @staticmethod
    async def _reject(send: Send, text: str, close: bool) -> None:
        body = json.dumps({"detail": text}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if close:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        limit, template = self._limit_for(scope)
        message = template.format(limit=_human(limit))
        declared = self._content_length(scope)
        if declared is not None and declared > limit:
            cap = max(2 * limit, DRAIN_MIN_BYTES)
            drained = declared <= cap and await _drain(receive, cap)
            await self._reject(send, f"the request body is {_human(declared)}; {message}", close=not drained)
            return

        received = 0
        exceeded = False
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            msg = await receive()
            if msg["type"] == "http.request":
                received += len(msg.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise _BodyTooLarge
            return msg

        async def guarded_send(msg: Message) -> None:
            nonlocal response_started
            if exceeded:
                return  # whatever the app answers to a cut body is replaced by the 413 below
            if msg["type"] == "http.response.start":
                response_started = True
            await send(msg)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _BodyTooLarge:
            pass
        except Exception:
            if not exceeded:
                raise
        if exceeded and not response_started:
            drained = await _drain(receive, max(2 * limit, DRAIN_MIN_BYTES))
            await self._reject(send, f"the request body is larger than allowed; {message}", close=not drained)


# ------------------------------------------------------------------------------- unparseable JSON bodies
#: FastAPI's 400 for a body it could not parse for another reason than a JSON syntax error
_PARSE_ERROR = "There was an error parsing the body"
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_NOT_A_BRACKET = bytes(sorted(set(range(256)) - set(b"[]{}")))
_BRACKET_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")


def json_depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects in ``body`` (brackets inside strings not counted)."""
    brackets = _JSON_STRING.sub(b"", body).translate(_BRACKET_STEPS, _NOT_A_BRACKET)
    steps = memoryview(brackets).cast("b")  # +1 per opening bracket, -1 per closing one
    return max(itertools.accumulate(steps), default=0)


async def json_body_error(request: Request, exc: HTTPException) -> str | None:
    """What made the JSON parser give up on the request body, when ``exc`` is FastAPI's bare
    "There was an error parsing the body"; None for any other error."""
    cause = exc.__cause__
    content_type = request.headers.get("content-type", "").lower()
    if exc.status_code != 400 or exc.detail != _PARSE_ERROR or "form" in content_type:
        return None
    if isinstance(cause, RecursionError):
        limit = f"the parser accepts fewer than {sys.getrecursionlimit()} levels"
        try:
            depth = json_depth(await request.body())  # read already: FastAPI keeps it on the request
        except RuntimeError:  # the body was not kept: the stream is consumed
            return f"request body is not valid JSON: nesting too deep; {limit}"
        return f"request body is not valid JSON: nesting {depth} levels deep; {limit}"
    if isinstance(cause, UnicodeDecodeError):
        return (
            f"request body is not valid JSON: not valid {cause.encoding.upper()} at byte {cause.start}"
            f" ({cause.reason}); send UTF-8 text"
        )
    if isinstance(cause, ValueError) and "integer string conversion" in str(cause):
        digits = sys.get_int_max_str_digits()
        return (
            f"request body is not valid JSON: an integer with more than {digits} digits"
            " (send large numbers as floats or strings)"
        )
    return None
