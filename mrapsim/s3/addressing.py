"""Which bucket and key a request addresses: from the Host header and the raw path.

- MRAP host `<alias>.accesspoint.s3-global.amazonaws.com` → the MRAP (`Target.mrap`), path = key;
  the app then routes the request to one of its buckets by the MRAP's traffic dials (mraps.py);
- virtual-hosted `bucket.s3.amazonaws.com`, `bucket.s3.<region>.amazonaws.com`,
  `bucket.s3-<region>.amazonaws.com`, `bucket.localhost` → bucket from the host, path = key;
- anything else (`s3.amazonaws.com`, `localhost`, an IP, a Kubernetes Service name) →
  path-style `/bucket/key`. An MRAP alias used as a path-style bucket name (what
  `--endpoint-url` users can do, research §4) is served as that MRAP.

The path is split on its raw form and then percent-decoded, so `%2F` inside a key stays part of
the key. A path that does not decode as UTF-8 is refused (keys are UTF-8 in S3).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import unquote_to_bytes

from mrapsim.config import MrapConfig
from mrapsim.s3.errors import S3Error
from mrapsim.s3.request import Addressing, Target

MRAP_SUFFIX = ".accesspoint.s3-global.amazonaws.com"
VIRTUAL_HOST = re.compile(r"(?:(?P<bucket>.+)\.)?s3(?:[.-][a-z0-9-]+)*\.amazonaws\.com")
LOCALHOST_SUFFIX = ".localhost"


def host_without_port(host: str) -> str:
    host = host.strip().lower().rstrip(".")
    if host.startswith("["):  # [IPv6]:port
        return host[: host.find("]") + 1]
    name, _, port = host.rpartition(":")
    return name if name and port.isdigit() else host


def resolve_target(host: str, raw_path: bytes, mraps: Sequence[MrapConfig]) -> Target:
    name = host_without_port(host)
    path = raw_path or b"/"
    if name.endswith(MRAP_SUFFIX):
        alias = name[: -len(MRAP_SUFFIX)]
        return Target(Addressing.MRAP, _mrap_bucket(alias, mraps), _key(path[1:]), alias)
    bucket_host = VIRTUAL_HOST.fullmatch(name)
    if bucket_host and bucket_host.group("bucket"):
        return Target(Addressing.VIRTUAL, bucket_host.group("bucket"), _key(path[1:]))
    if name.endswith(LOCALHOST_SUFFIX):
        return Target(Addressing.VIRTUAL, name[: -len(LOCALHOST_SUFFIX)], _key(path[1:]))
    bucket_part, _, key_part = path[1:].partition(b"/")
    if not bucket_part:
        return Target(Addressing.PATH, None, None)
    bucket = _decode(bucket_part)
    for mrap in mraps:
        if bucket == mrap.alias:
            return Target(Addressing.MRAP, mrap.buckets[0], _key(key_part), mrap.alias)
    return Target(Addressing.PATH, bucket, _key(key_part))


def _mrap_bucket(alias: str, mraps: Sequence[MrapConfig]) -> str:
    """A stand-in until the app routes the request; an MRAP created at run time (S3 Control) is
    not in the configuration, and the app answers NoSuchAccessPoint if the store lacks it too."""
    for mrap in mraps:
        if mrap.alias == alias:
            return mrap.buckets[0]
    return alias


def _key(raw: bytes) -> str | None:
    return _decode(raw) if raw else None


def _decode(raw: bytes) -> str:
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise S3Error("InvalidURI", "Couldn't parse the specified URI.", 400) from None
