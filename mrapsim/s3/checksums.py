"""Flexible checksums (`x-amz-checksum-<algorithm>`): the algorithms, incremental computers, and
the CRC arithmetic that multipart composite and full-object checksums need.

Values on the wire are base64 of the big-endian digest. The CRCs (CRC32, CRC32C, CRC64NVME)
and their combination come from `awscrt.checksums`, the C code the AWS SDKs use; SHA1/SHA256 are
hashlib's.

Computers are fed the body as it streams in; nothing here holds a body.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from awscrt import checksums as crt

from mrapsim.s3.errors import S3Error

ALGORITHMS = ("crc32", "crc32c", "crc64nvme", "sha1", "sha256")
CRC_ALGORITHMS = ("crc32", "crc32c", "crc64nvme")
HEADER_PREFIX = "x-amz-checksum-"
WIRE_NAMES = {name: name.upper() for name in ALGORITHMS}  # "crc64nvme" → "CRC64NVME"
DIGEST_SIZES = {"crc32": 4, "crc32c": 4, "crc64nvme": 8, "sha1": 20, "sha256": 32}


class Computer(Protocol):
    def update(self, data: bytes) -> None: ...

    def digest(self) -> bytes: ...


CrcFunction = Callable[[bytes, int], int]  # (data, previous crc) -> crc, chaining from 0
CombineFunction = Callable[[int, int, int], int]  # (crc of A, crc of B, len(B)) -> crc of A‖B

CRC_FUNCTIONS: Mapping[str, CrcFunction] = {"crc32": crt.crc32, "crc32c": crt.crc32c, "crc64nvme": crt.crc64nvme}
CRC_COMBINE: Mapping[str, CombineFunction] = {
    "crc32": crt.combine_crc32,
    "crc32c": crt.combine_crc32c,
    "crc64nvme": crt.combine_crc64nvme,
}


def crc_function(algorithm: str) -> CrcFunction:
    """`f(data, previous) -> crc` for a CRC algorithm."""
    return CRC_FUNCTIONS[algorithm]


class _Crc:
    def __init__(self, algorithm: str) -> None:
        self._function = crc_function(algorithm)
        self._size = DIGEST_SIZES[algorithm]
        self.value = 0

    def update(self, data: bytes) -> None:
        self.value = self._function(data, self.value)

    def digest(self) -> bytes:
        return self.value.to_bytes(self._size, "big")


def new_computer(algorithm: str) -> Computer:
    if algorithm in CRC_ALGORITHMS:
        return _Crc(algorithm)
    if algorithm == "sha1":
        return hashlib.sha1(usedforsecurity=False)
    if algorithm == "sha256":
        return hashlib.sha256()
    raise ValueError(f"unknown checksum algorithm {algorithm!r}")


def encode(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def checksum(algorithm: str, data: bytes) -> str:
    """base64 checksum of `data`."""
    computer = new_computer(algorithm)
    computer.update(data)
    return encode(computer.digest())


def decode_value(algorithm: str, value: str) -> bytes | None:
    """The raw digest a base64 value carries, or None when it is not one of this algorithm's."""
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == DIGEST_SIZES[algorithm] else None


def algorithm_of(name: str) -> str | None:
    """Algorithm name of "CRC32", "x-amz-checksum-crc32" or "crc32" ("crc32"); None when not a checksum."""
    lowered = name.strip().lower().removeprefix(HEADER_PREFIX)
    return lowered if lowered in ALGORITHMS else None


def invalid_checksum_value(algorithm: str) -> S3Error:
    return S3Error(
        "InvalidRequest",
        f"Value for x-amz-checksum-{algorithm} header is invalid.",
        400,
    )


def bad_digest(algorithm: str) -> S3Error:
    return S3Error(
        "BadDigest",
        f"The {WIRE_NAMES[algorithm]} you specified did not match the calculated checksum.",
        400,
    )


@dataclass(frozen=True)
class DeclaredChecksum:
    """A checksum a request promises: its algorithm and, unless it comes in a trailer, its value."""

    algorithm: str
    value: str | None  # None: announced by `x-amz-trailer`, arrives after the body


def declared_in_headers(headers: Mapping[str, str]) -> DeclaredChecksum | None:
    """The one `x-amz-checksum-<alg>` header a request carries (more than one is InvalidRequest)."""
    declared = [(name, headers[HEADER_PREFIX + name]) for name in ALGORITHMS if HEADER_PREFIX + name in headers]
    if len(declared) > 1:
        raise S3Error(
            "InvalidRequest",
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.",
            400,
        )
    if not declared:
        return None
    name, value = declared[0]
    if decode_value(name, value) is None:
        raise invalid_checksum_value(name)
    return DeclaredChecksum(name, value)


def verify(algorithm: str, declared: str, computed: str) -> None:
    if declared != computed:
        raise bad_digest(algorithm)


# -- multipart -----------------------------------------------------------------------------------


def composite(algorithm: str, part_values: list[str]) -> str:
    """S3's COMPOSITE checksum: the checksum of the concatenated raw part checksums, `-N`."""
    computer = new_computer(algorithm)
    for value in part_values:
        raw = decode_value(algorithm, value)
        if raw is None:
            raise invalid_checksum_value(algorithm)
        computer.update(raw)
    return f"{encode(computer.digest())}-{len(part_values)}"


def full_object_crc(algorithm: str, parts: list[tuple[str, int]]) -> str:
    """S3's FULL_OBJECT checksum of a multipart object, combined from the parts' CRCs and sizes
    (no pass over the data: CRC(A‖B) follows from CRC(A), CRC(B) and len(B))."""
    combine = CRC_COMBINE[algorithm]
    total = 0
    for index, (value, size) in enumerate(parts):
        raw = decode_value(algorithm, value)
        if raw is None:
            raise invalid_checksum_value(algorithm)
        part = int.from_bytes(raw, "big")
        total = part if index == 0 else combine(total, part, size)
    return encode(total.to_bytes(DIGEST_SIZES[algorithm], "big"))
