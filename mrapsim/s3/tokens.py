"""Stateless continuation tokens for listings.

A token carries the resume position (`ListPage.next_after`) encrypted and authenticated with
AES-GCM under a key derived from the configuration, with the bucket name as associated data:
- valid across restarts and replicas that share the configuration (no server-side state);
- opaque ("obfuscated and is not a real key", as S3 documents) — keys may be sensitive;
- tamper-evident: a flipped bit, a truncation or another bucket's token fails to decrypt,
  which the listing answers with InvalidArgument;
- different on every page, because the position strictly advances (botocore's paginator
  refuses a token it has seen twice).
The nonce is derived from the plaintext (SIV-style), so equal positions give equal tokens and
nothing random needs to be shared between replicas.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

TOKEN_VERSION = b"\x01"
NONCE_SIZE = 12


class ContinuationTokens:
    def __init__(self, secret: bytes) -> None:
        self._cipher = AESGCM(hmac.new(secret, b"mrapsim token encryption", hashlib.sha256).digest())
        self._nonce_key = hmac.new(secret, b"mrapsim token nonce", hashlib.sha256).digest()

    @classmethod
    def from_secrets(cls, secrets: Iterable[str]) -> ContinuationTokens:
        """Tokens keyed by the configured secret keys, so every replica with the same
        credentials accepts every other replica's tokens."""
        material = b"\x00".join(sorted(s.encode("utf-8") for s in secrets))
        return cls(hashlib.sha256(b"mrapsim continuation tokens\x00" + material).digest())

    def encode(self, scope: str, position: str) -> str:
        plain = position.encode("utf-8")
        nonce = hmac.new(self._nonce_key, scope.encode("utf-8") + b"\x00" + plain, hashlib.sha256).digest()[:NONCE_SIZE]
        sealed = self._cipher.encrypt(nonce, plain, scope.encode("utf-8"))
        return base64.urlsafe_b64encode(TOKEN_VERSION + nonce + sealed).decode("ascii").rstrip("=")

    def decode(self, scope: str, token: str) -> str | None:
        """The position a token carries, or None when it is not one of ours for `scope`."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            return None
        if len(raw) < 1 + NONCE_SIZE + 16 or raw[:1] != TOKEN_VERSION:
            return None
        nonce, sealed = raw[1 : 1 + NONCE_SIZE], raw[1 + NONCE_SIZE :]
        try:
            return self._cipher.decrypt(nonce, sealed, scope.encode("utf-8")).decode("utf-8")
        except (InvalidTag, UnicodeDecodeError):
            return None
