"""Which bucket an MRAP request goes to.

The rule (documented in README's S3 section and docs/failover.md): only buckets whose traffic
dial is above 0 take requests. Among them, a bucket in the MRAP's `client_region` wins (S3 sends
a request to the nearest active bucket; `client_region` says where "nearest" is, since every
mrapsim client is local); otherwise each request draws one bucket with probability proportional
to its dial, so 100/0 is active/passive and 100/100 splits evenly. With every dial at 0 the MRAP
has nowhere to send a request: 503 ServiceUnavailable, which is what a client sees mid-failover
when both Regions are set passive.
"""

from __future__ import annotations

import random

from mrapsim.s3.errors import S3Error
from mrapsim.store import MrapInfo, MrapRoute


def choose_route(mrap: MrapInfo, rng: random.Random) -> MrapRoute:
    active = [route for route in mrap.routes if route.dial > 0]
    if not active:
        raise S3Error(
            "ServiceUnavailable",
            f"Multi-Region Access Point {mrap.name} has no active Region (every traffic dial is 0).",
            503,
        )
    nearest = [route for route in active if route.region == mrap.client_region]
    if nearest:
        return nearest[0]
    if len(active) == 1:
        return active[0]
    return rng.choices(active, weights=[route.dial for route in active])[0]


def no_such_access_point(alias: str) -> S3Error:
    return S3Error("NoSuchAccessPoint", "The specified accesspoint does not exist", 404, AccessPointName=alias)
