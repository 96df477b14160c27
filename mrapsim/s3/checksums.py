"""Flexible checksums (`x-amz-checksum-<algorithm>`): which algorithms exist and how to compute
them. Values are base64 of the big-endian digest, as S3 sends them.

CRC32, SHA1 and SHA256 come from the standard library. CRC32C and CRC64NVME need table-driven
code (or awscrt) and are not computed yet: a value the client sends for them is stored and
echoed unverified (stage 2 adds the computation; aws-chunked trailers will share this module).
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import Callable, Mapping

from mrapsim.s3.errors import S3Error

ALGORITHMS = ("crc32", "crc32c", "crc64nvme", "sha1", "sha256")
HEADER_PREFIX = "x-amz-checksum-"


def _crc32(data: bytes) -> bytes:
    return zlib.crc32(data).to_bytes(4, "big")


COMPUTERS: Mapping[str, Callable[[bytes], bytes]] = {
    "crc32": _crc32,
    "sha1": lambda data: hashlib.sha1(data, usedforsecurity=False).digest(),
    "sha256": lambda data: hashlib.sha256(data).digest(),
}


def checksum(algorithm: str, data: bytes) -> str | None:
    """base64 checksum of `data`, or None when `algorithm` is not computed here."""
    compute = COMPUTERS.get(algorithm)
    return base64.b64encode(compute(data)).decode("ascii") if compute else None


def checksums_from_headers(headers: Mapping[str, str], data: bytes) -> dict[str, str]:
    """The checksums a request declares in headers, each verified where it can be.
    A mismatch is S3's BadDigest; more than one algorithm is InvalidRequest."""
    declared = {name: headers[HEADER_PREFIX + name] for name in ALGORITHMS if HEADER_PREFIX + name in headers}
    if len(declared) > 1:
        raise S3Error(
            "InvalidRequest",
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.",
            400,
        )
    for name, value in declared.items():
        computed = checksum(name, data)
        if computed is not None and computed != value:
            raise S3Error(
                "BadDigest",
                f"The {name.upper()} you specified did not match the calculated checksum.",
                400,
            )
    return declared
