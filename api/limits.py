"""Request-body size limits, enforced while the body streams in (a 413 before the whole body is read).

A declared ``Content-Length`` above the limit is refused at once; a body without one (chunked) is
counted chunk by chunk and refused as soon as it passes the limit. Multipart (upload) requests get
``max_upload_bytes``, every other body ``max_json_bytes``.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class _BodyTooLarge(Exception):
    pass


def _human(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} bytes"


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_upload_bytes: int, max_json_bytes: int) -> None:
        self.app = app
        self.max_upload_bytes = max_upload_bytes
        self.max_json_bytes = max_json_bytes

    def _limit_for(self, scope: Scope) -> tuple[int, str]:
        content_type = ""
        for name, value in scope.get("headers") or ():
            if name == b"content-type":
                content_type = value.decode("latin-1").lower()
                break
        if content_type.startswith("multipart/"):
            return self.max_upload_bytes, "uploads are limited to {limit} (METALEARN_MAX_UPLOAD_BYTES)"
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
    async def _reject(send: Send, text: str) -> None:
        body = json.dumps({"detail": text}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        limit, template = self._limit_for(scope)
        message = template.format(limit=_human(limit))
        declared = self._content_length(scope)
        if declared is not None and declared > limit:
            await self._reject(send, f"the request body is {_human(declared)}; {message}")
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
            await self._reject(send, f"the request body is larger than allowed; {message}")
