"""Reflected CRCs in pure Python: CRC32, CRC32C (Castagnoli) and CRC64NVME, the fallback when
awscrt is not installed (see checksums.py), plus `combine` for multipart full-object checksums.

All three have init = xorout = all ones, so `update(data, previous)` chains exactly like
`zlib.crc32(data, previous)` (start from 0).

Speed: slicing-by-8 — the body is read as little-endian 64-bit words (struct, in blocks so no
big tuple is built), each word costs eight table lookups. CPython does ~10-20 MB/s this way,
several times the byte-at-a-time loop; awscrt does GB/s.

`combine(crc_a, crc_b, len_b)` is CRC(A‖B) without the data: crc_a times x^(8·len_b) modulo the
polynomial, xor crc_b (zlib's crc32_combine, generalised to any width).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import cached_property

BLOCK_WORDS = 8192  # 64 KiB of input per struct.unpack_from call


@dataclass(frozen=True)
class CrcParameters:
    name: str
    width: int
    poly: int  # reflected
    check: int  # CRC of b"123456789", for self-tests

    @property
    def mask(self) -> int:
        return (1 << self.width) - 1

    @cached_property
    def tables(self) -> tuple[tuple[int, ...], ...]:
        first = []
        for byte in range(256):
            value = byte
            for _ in range(8):
                value = (value >> 1) ^ self.poly if value & 1 else value >> 1
            first.append(value)
        tables = [tuple(first)]
        for _ in range(7):
            previous = tables[-1]
            tables.append(tuple((previous[i] >> 8) ^ first[previous[i] & 0xFF] for i in range(256)))
        return tuple(tables)

    def update(self, data: bytes, previous: int = 0) -> int:
        t0, t1, t2, t3, t4, t5, t6, t7 = self.tables
        crc = previous ^ self.mask
        words = len(data) // 8
        offset = 0
        while offset < words * 8:
            count = min(BLOCK_WORDS, words - offset // 8)
            for word in struct.unpack_from(f"<{count}Q", data, offset):
                v = crc ^ word
                crc = (
                    t7[v & 0xFF]
                    ^ t6[(v >> 8) & 0xFF]
                    ^ t5[(v >> 16) & 0xFF]
                    ^ t4[(v >> 24) & 0xFF]
                    ^ t3[(v >> 32) & 0xFF]
                    ^ t2[(v >> 40) & 0xFF]
                    ^ t1[(v >> 48) & 0xFF]
                    ^ t0[v >> 56]
                )
            offset += count * 8
        for byte in data[words * 8 :]:
            crc = t0[(crc ^ byte) & 0xFF] ^ (crc >> 8)
        return crc ^ self.mask

    # -- combination -------------------------------------------------------------------------

    def _multiply(self, a: int, b: int) -> int:
        """a(x)·b(x) mod p(x), both in reflected representation."""
        top = 1 << (self.width - 1)
        product = 0
        while a:
            if a & top:
                product ^= b
            a = (a << 1) & self.mask
            b = (b >> 1) ^ self.poly if b & 1 else b >> 1
        return product

    @cached_property
    def _powers(self) -> tuple[int, ...]:
        """x^(2^k) mod p for k = 0..66 (enough for any byte length below 2^64)."""
        powers = [1 << (self.width - 2)]  # x^1
        for _ in range(66):
            powers.append(self._multiply(powers[-1], powers[-1]))
        return tuple(powers)

    def _x_to_8n(self, length: int) -> int:
        """x^(8·length) mod p."""
        result = 1 << (self.width - 1)  # x^0
        k = 3  # 8 = 2^3
        while length:
            if length & 1:
                result = self._multiply(self._powers[k], result)
            length >>= 1
            k += 1
        return result

    def combine(self, crc_a: int, crc_b: int, length_b: int) -> int:
        return self._multiply(self._x_to_8n(length_b), crc_a) ^ crc_b


CRC32 = CrcParameters("crc32", 32, 0xEDB88320, 0xCBF43926)
CRC32C = CrcParameters("crc32c", 32, 0x82F63B78, 0xE3069283)
CRC64NVME = CrcParameters("crc64nvme", 64, 0x9A6C9329AC4BC9B5, 0xAE8B14860A799888)

PARAMETERS = {p.name: p for p in (CRC32, CRC32C, CRC64NVME)}
