"""What handlers return: status, headers and a body that is either bytes or a stream of chunks.

The app adds the headers every response carries (`x-amz-request-id`, `x-amz-id-2`) and sends
it; handlers never touch ASGI.
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from dataclasses import dataclass

XML_CONTENT_TYPE = "application/xml"


@dataclass(frozen=True)
class S3Response:
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | AsyncIterable[bytes] = b""
    # For a streamed body, its length (sent as Content-Length); bytes bodies are measured.
    content_length: int | None = None

    def closing(self) -> S3Response:
        """This response with `Connection: close` (the request body was not read to its end, or
        the server is draining)."""
        if any(name == "connection" for name, _ in self.headers):
            return self
        return S3Response(self.status, (*self.headers, ("connection", "close")), self.body, self.content_length)

    def with_headers(self, *headers: tuple[str, str]) -> S3Response:
        return S3Response(self.status, (*self.headers, *headers), self.body, self.content_length)


def xml_response(body: bytes, status: int = 200, headers: tuple[tuple[str, str], ...] = ()) -> S3Response:
    return S3Response(status, (("content-type", XML_CONTENT_TYPE), *headers), body)


def empty_response(status: int = 200, headers: tuple[tuple[str, str], ...] = ()) -> S3Response:
    return S3Response(status, headers, b"")
