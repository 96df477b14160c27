"""Receiving an object body: plain or aws-chunked, verified while it streams, stored as it comes.

One pass over the bytes as they arrive: the aws-chunked framing is decoded (chunked.py), chunk
and trailer signatures are checked (auth.StreamingKey), MD5 (the ETag) and the checksums the
request declares are computed, and the data goes to the store's ContentBuilder. Nothing is
buffered whole, so a 5 GiB PutObject holds at most the stored result plus one piece.

Verdicts come at the end, before anything is stored: a trailer or header checksum that does not
match is BadDigest, a decoded length that differs from x-amz-decoded-content-length is
IncompleteBody, a bad chunk signature is SignatureDoesNotMatch. The caller only stores what
`receive_body` returns.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from mrapsim.s3 import chunked
from mrapsim.s3.auth import SIGNATURE_MISMATCH_MESSAGE, STREAMING_UNSIGNED_TRAILER, StreamingKey
from mrapsim.s3.checksums import (
    HEADER_PREFIX,
    Computer,
    algorithm_of,
    declared_in_headers,
    decode_value,
    encode,
    invalid_checksum_value,
    new_computer,
    verify,
)
from mrapsim.s3.context import Context
from mrapsim.s3.errors import S3Error
from mrapsim.s3.request import bounded_int
from mrapsim.store import ContentSource

AWS_CHUNKED = "aws-chunked"
MAX_PUT_SIZE = 5 * 1024**3  # 5 GiB in one PutObject / UploadPart


@dataclass(frozen=True)
class ReceivedBody:
    content: ContentSource
    md5: bytes
    # algorithm → base64 value: the declared checksum (verified) and any asked to be computed
    checksums: Mapping[str, str] = field(default_factory=dict)

    @property
    def etag(self) -> str:
        return f'"{self.md5.hex()}"'


def is_aws_chunked(headers: Mapping[str, str], content_sha256: str | None) -> bool:
    encodings = [e.strip().lower() for e in headers.get("content-encoding", "").split(",")]
    return AWS_CHUNKED in encodings or (content_sha256 or "").startswith("STREAMING-")


def stored_content_encoding(value: str | None) -> str | None:
    """Content-Encoding as S3 stores it: without `aws-chunked`, which only framed the upload."""
    if value is None:
        return None
    kept = [e.strip() for e in value.split(",") if e.strip() and e.strip().lower() != AWS_CHUNKED]
    return ", ".join(kept) or None


def declared_size(headers: Mapping[str, str], chunked_body: bool) -> int | None:
    name = "x-amz-decoded-content-length" if chunked_body else "content-length"
    text = headers.get(name)
    if text is None:
        return None
    size = bounded_int(text)
    if size is None:
        raise S3Error("InvalidArgument", f"{name} must be a non-negative integer", 400, ArgumentName=name)
    return size


def check_put_size(headers: Mapping[str, str], content_sha256: str | None) -> None:
    """MissingContentLength and EntityTooLarge, from the headers, before any body is read."""
    chunked_body = is_aws_chunked(headers, content_sha256)
    size = declared_size(headers, chunked_body)
    if size is None and "content-length" not in headers and "transfer-encoding" not in headers:
        raise S3Error("MissingContentLength", "You must provide the Content-Length HTTP header.", 411)
    if size is not None and size > MAX_PUT_SIZE:
        raise S3Error(
            "EntityTooLarge",
            "Your proposed upload exceeds the maximum allowed size",
            400,
            ProposedSize=size,
            MaxSizeAllowed=MAX_PUT_SIZE,
        )


class _Sink:
    """Where decoded data goes: the store's builder, MD5 and the checksum computers."""

    def __init__(self, ctx: Context, algorithms: Iterable[str]) -> None:
        self.builder = ctx.store.new_content()
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.computers: dict[str, Computer] = {name: new_computer(name) for name in algorithms}
        self.size = 0

    def write(self, data: bytes) -> None:
        self.builder.append(data)
        self.md5.update(data)
        for computer in self.computers.values():
            computer.update(data)
        self.size += len(data)

    def computed(self) -> dict[str, str]:
        return {name: encode(computer.digest()) for name, computer in self.computers.items()}


async def receive_body(
    ctx: Context, *, compute: Iterable[str] = (), checksum_headers_describe_body: bool = True
) -> ReceivedBody:
    """Read, decode and verify the request body; see the module comment. `compute` names
    checksum algorithms to compute even if the request declares none (multipart parts).
    CompleteMultipartUpload passes `checksum_headers_describe_body=False`: its
    `x-amz-checksum-*` header is the whole object's checksum, not its XML body's."""
    headers = ctx.request.headers
    content_sha256 = ctx.auth.content_sha256
    header_checksum = declared_in_headers(headers) if checksum_headers_describe_body else None
    trailer_names = [n.strip() for n in headers.get("x-amz-trailer", "").split(",") if n.strip()]
    trailer_algorithms = []
    for name in trailer_names:
        algorithm = algorithm_of(name)
        if algorithm is None or not name.lower().startswith(HEADER_PREFIX):
            raise S3Error("InvalidRequest", f"The trailer {name} is not supported", 400)
        trailer_algorithms.append(algorithm)
    if header_checksum is not None and trailer_algorithms:
        raise S3Error(
            "InvalidRequest",
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.",
            400,
        )
    algorithms = {*compute, *trailer_algorithms}
    if header_checksum is not None:
        algorithms.add(header_checksum.algorithm)
    sink = _Sink(ctx, sorted(algorithms))
    trailer: Mapping[str, str] = {}
    if is_aws_chunked(headers, content_sha256):
        decoded_length = declared_size(headers, True)
        trailer = await _receive_aws_chunked(ctx, sink, decoded_length, ctx.auth.streaming_key, content_sha256)
    else:
        async for piece in ctx.body.chunks():
            sink.write(piece)
    computed = sink.computed()
    checksums: dict[str, str] = {}
    if header_checksum is not None and header_checksum.value is not None:
        verify(header_checksum.algorithm, header_checksum.value, computed[header_checksum.algorithm])
        checksums[header_checksum.algorithm] = header_checksum.value
    for algorithm in trailer_algorithms:
        value = trailer.get(HEADER_PREFIX + algorithm)
        if value is None:
            raise S3Error(
                "InvalidRequest",
                f"The x-amz-trailer header names {HEADER_PREFIX}{algorithm} but the trailer does not carry it",
                400,
            )
        if decode_value(algorithm, value) is None:
            raise invalid_checksum_value(algorithm)
        verify(algorithm, value, computed[algorithm])
        checksums[algorithm] = value
    for name in trailer:
        if algorithm_of(name) is not None and algorithm_of(name) not in trailer_algorithms:
            raise S3Error("InvalidRequest", f"The trailer carries {name}, which x-amz-trailer does not declare", 400)
    for algorithm in compute:
        checksums.setdefault(algorithm, computed[algorithm])
    md5 = sink.md5.digest()
    _check_content_md5(headers.get("content-md5"), md5)
    return ReceivedBody(sink.builder.finish(), md5, checksums)


async def _receive_aws_chunked(
    ctx: Context,
    sink: _Sink,
    decoded_length: int | None,
    key: StreamingKey | None,
    content_sha256: str | None,
) -> Mapping[str, str]:
    decoder = chunked.AwsChunkedDecoder(decoded_length)
    chain = _SignatureChain(key, signed_trailer=key is not None and (content_sha256 or "").endswith("-TRAILER"))
    trailer: dict[str, str] = {}
    finished = False

    def drain() -> bool:
        while True:
            event = decoder.next_event()
            if event is chunked.NEED_DATA:
                return False
            if isinstance(event, chunked.Data):
                sink.write(event.data)
                chain.data(event.data)
            elif isinstance(event, chunked.ChunkHeader):
                chain.header(event)
            elif isinstance(event, chunked.ChunkEnd):
                chain.end()
            elif isinstance(event, chunked.Trailers):
                chain.trailers(event)
                trailer.update(event.fields)
            elif isinstance(event, chunked.EndOfBody):
                return True
            elif isinstance(event, chunked.Malformed):
                raise _framing_error(event)

    async for piece in ctx.body.chunks():
        decoder.receive_data(piece)
        finished = drain() or finished
    decoder.receive_eof()
    if not finished and not drain():
        raise _framing_error(chunked.Malformed(chunked.Problem.TRUNCATED, "the body ended early"))
    if content_sha256 == STREAMING_UNSIGNED_TRAILER and not trailer and ctx.request.headers.get("x-amz-trailer"):
        raise S3Error("InvalidRequest", "The aws-chunked body has no trailer", 400)
    return trailer


class _SignatureChain:
    """Checks each chunk's signature against the previous one (sans-IO, fed decoder events)."""

    def __init__(self, key: StreamingKey | None, *, signed_trailer: bool) -> None:
        self._key = key
        self._signed_trailer = signed_trailer
        self._previous = key.seed_signature if key else ""
        self._pending: str | None = None
        self._hash = hashlib.sha256()

    def header(self, event: chunked.ChunkHeader) -> None:
        if self._key is None:
            return
        if event.signature is None:
            raise S3Error("IncompleteSignature", "A chunk of the aws-chunked body carries no chunk-signature", 403)
        self._pending = event.signature
        self._hash = hashlib.sha256()

    def data(self, data: bytes) -> None:
        if self._key is not None:
            self._hash.update(data)

    def end(self) -> None:
        if self._key is None or self._pending is None:
            return
        to_sign = self._key.chunk_string_to_sign(self._previous, self._hash.hexdigest())
        if not self._key.verify(to_sign, self._pending):
            raise _chunk_signature_mismatch(to_sign, self._pending)
        self._previous = self._pending.rstrip("*")
        self._pending = None

    def trailers(self, event: chunked.Trailers) -> None:
        if self._key is None or not self._signed_trailer:
            return
        if event.signature is None:
            raise S3Error("IncompleteSignature", "The trailer carries no x-amz-trailer-signature", 403)
        canonical = "".join(f"{name}:{value}\n" for name, value in sorted(event.fields))
        to_sign = self._key.trailer_string_to_sign(self._previous, canonical)
        if not self._key.verify(to_sign, event.signature):
            raise _chunk_signature_mismatch(to_sign, event.signature)


def _chunk_signature_mismatch(to_sign: str, provided: str) -> S3Error:
    return S3Error(
        "SignatureDoesNotMatch",
        SIGNATURE_MISMATCH_MESSAGE,
        403,
        StringToSign=to_sign,
        SignatureProvided=provided,
    )


def _framing_error(verdict: chunked.Malformed) -> S3Error:
    if verdict.problem is chunked.Problem.TRUNCATED:
        return S3Error(
            "IncompleteBody",
            f"You did not provide the number of bytes specified by the Content-Length HTTP header ({verdict.reason}).",
            400,
        )
    if verdict.problem is chunked.Problem.TOO_LARGE:
        return S3Error("InvalidRequest", f"The aws-chunked body is too large: {verdict.reason}.", 400)
    return S3Error("InvalidRequest", f"The aws-chunked body is malformed: {verdict.reason}.", 400)


def _check_content_md5(value: str | None, md5: bytes) -> None:
    if value is None:
        return
    try:
        declared = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        declared = b""
    if len(declared) != 16:
        raise S3Error("InvalidDigest", "The Content-MD5 you specified was invalid.", 400, **{"Content-MD5": value})
    if declared != md5:
        raise S3Error(
            "BadDigest",
            "The Content-MD5 you specified did not match what we received.",
            400,
            ExpectedDigest=declared.hex(),
            CalculatedDigest=md5.hex(),
        )
