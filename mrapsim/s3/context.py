"""Everything a handler may use, passed as one value so that handler signatures stay uniform."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from mrapsim.config import Config
from mrapsim.s3.auth import Authorized
from mrapsim.s3.request import RequestBody, S3Request, Target
from mrapsim.s3.tokens import ContinuationTokens
from mrapsim.store import Store

# The data plane reports one region; everything that names it imports it from here.
REGION = "us-east-1"


@dataclass(frozen=True)
class Owner:
    id: str
    display_name: str

    @classmethod
    def for_access_key(cls, access_key: str | None) -> Owner:
        """A stable canonical-user-like id (64 hex digits, as S3's) per access key."""
        seed = access_key or "anonymous"
        return cls(hashlib.sha256(f"mrapsim owner {seed}".encode()).hexdigest(), "mrapsim")


@dataclass(frozen=True)
class Context:
    request: S3Request
    target: Target  # where the request is addressed (addressing.py)
    auth: Authorized  # who signed it, and what its body must hash to (auth.py)
    body: RequestBody
    store: Store
    config: Config
    tokens: ContinuationTokens
    now: Callable[[], dt.datetime]
    # An unsigned request admitted to an operation anyone may be granted (acl.py decides).
    anonymous: bool = False
    # Delete markers a multi-key handler added, (key, version id), for MRAP replication: a
    # single-key write says so in its response headers (x-amz-version-id), DeleteObjects cannot.
    new_markers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def owner(self) -> Owner:
        access_key = self.auth.access_key
        if access_key is None and self.config.auth.credentials:
            access_key = self.config.auth.credentials[0].access_key
        return Owner.for_access_key(access_key)

    @property
    def bucket(self) -> str:
        """The addressed bucket; only called by bucket- and object-level handlers."""
        bucket = self.target.bucket
        if bucket is None:
            raise RuntimeError("a bucket-level handler was routed a service-level request")
        return bucket

    @property
    def key(self) -> str:
        key = self.target.key
        if key is None:
            raise RuntimeError("an object-level handler was routed a bucket-level request")
        return key
