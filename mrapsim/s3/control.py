"""The S3 Control API's Multi-Region Access Point calls, as aws-cli makes them with
`--endpoint-url`: botocore prefixes the endpoint's host with the account id
(`https://123456789012.localhost:8444/v20180820/mrap/instances/...`), sends `x-amz-account-id`
and signs with SigV4 for service `s3`. The app hands every request whose path starts with
`/v20180820/` here, after verifying its signature.

| call | method and path |
|---|---|
| CreateMultiRegionAccessPoint | POST /v20180820/async-requests/mrap/create |
| DeleteMultiRegionAccessPoint | POST /v20180820/async-requests/mrap/delete |
| DescribeMultiRegionAccessPointOperation | GET /v20180820/async-requests/mrap/{request token ARN} |
| GetMultiRegionAccessPoint | GET /v20180820/mrap/instances/{name} |
| ListMultiRegionAccessPoints | GET /v20180820/mrap/instances |
| GetMultiRegionAccessPointRoutes | GET /v20180820/mrap/instances/{mrap}/routes |
| SubmitMultiRegionAccessPointRoutes | PATCH /v20180820/mrap/instances/{mrap}/routes |
| (mrapsim's own) PauseReplication, ResumeReplication | POST /v20180820/mrapsim/replication/{bucket}/pause, /resume |

The last two are not AWS calls: they take a bucket's Region "down" for MRAP replication (copies
to it wait, `mrapsim_replication_backlog` grows) and bring it back; any SigV4 client can send
them (`curl --aws-sigv4 "aws:amz:us-east-1:s3"`).

Create and delete are asynchronous in S3 (minutes); here they take effect at once and their
request token ARN carries the whole operation (base64url JSON), so Describe answers SUCCEEDED
from the token alone — stateless like the listing tokens, valid on any worker and after a
restart. Routes are the store's (`Store.put_mrap`), so every worker routes by the same dials.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
import secrets
import string
from collections.abc import Awaitable, Callable
from dataclasses import replace
from urllib.parse import unquote

from mrapsim.s3.documents import child_text, malformed_xml, parse_request_document
from mrapsim.s3.errors import S3Error
from mrapsim.s3.responses import S3Response, empty_response, xml_response
from mrapsim.s3.xml import DECLARATION, iso_timestamp, leaf, node
from mrapsim.store import MrapInfo, MrapRoute, NoSuchBucketError, Store

PREFIX = "/v20180820/"
NAMESPACE = "http://awss3control.amazonaws.com/doc/2018-08-20/"
CONTROL_REGION = "us-west-2"  # S3 Control serves MRAP calls from us-west-2 only
ALIAS_ALPHABET = string.ascii_lowercase + string.digits
ACCOUNTLESS = frozenset({"PauseReplication", "ResumeReplication"})  # mrapsim's own, bucket-wide
PUBLIC_ACCESS_BLOCK = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
MRAP_NAME = re.compile(r"[a-z0-9][a-z0-9-]{1,48}[a-z0-9]")


def is_control_path(raw_path: str) -> bool:
    return raw_path.startswith(PREFIX)


def control_document(root: str, *children: str) -> bytes:
    return (DECLARATION + f'<{root} xmlns="{NAMESPACE}">' + "".join(children) + f"</{root}>").encode("utf-8")


def no_such_mrap(name: str) -> S3Error:
    return S3Error("NoSuchMultiRegionAccessPoint", "The specified Multi-Region Access Point does not exist.", 404)


Body = Callable[[], Awaitable[bytes]]


def operation_of(method: str, raw_path: str) -> str:
    """The S3 Control operation name for the request line ("Unknown" when none matches)."""
    path = unquote(raw_path.split("?", 1)[0])[len(PREFIX) :]
    if path.startswith("async-requests/mrap/"):
        rest = path[len("async-requests/mrap/") :]
        if method == "POST" and rest in ("create", "delete"):
            return f"{rest.capitalize()}MultiRegionAccessPoint"
        if method == "GET":
            return "DescribeMultiRegionAccessPointOperation"
    if method == "POST" and re.fullmatch(r"mrapsim/replication/[^/]+/(pause|resume)", path):
        return "PauseReplication" if path.endswith("/pause") else "ResumeReplication"
    if path == "mrap/instances" and method == "GET":
        return "ListMultiRegionAccessPoints"
    if path.startswith("mrap/instances/"):
        if path.endswith("/routes"):
            return {"GET": "GetMultiRegionAccessPointRoutes", "PATCH": "SubmitMultiRegionAccessPointRoutes"}.get(
                method, "Unknown"
            )
        if method == "GET":
            return "GetMultiRegionAccessPoint"
    return "Unknown"


async def handle(operation: str, raw_path: str, account: str, store: Store, body: Body, now: dt.datetime) -> S3Response:
    path = unquote(raw_path.split("?", 1)[0])[len(PREFIX) :]
    if operation == "CreateMultiRegionAccessPoint":
        return await _create(account, store, await body(), now)
    if operation == "DeleteMultiRegionAccessPoint":
        return await _delete(account, store, await body(), now)
    if operation == "DescribeMultiRegionAccessPointOperation":
        return _describe(path[len("async-requests/mrap/") :])
    if operation == "ListMultiRegionAccessPoints":
        mraps = [m for m in await store.list_mraps() if m.account == account]
        return xml_response(
            control_document(
                "ListMultiRegionAccessPointsResult", node("AccessPoints", *(_report(m, "AccessPoint") for m in mraps))
            )
        )
    if operation == "GetMultiRegionAccessPoint":
        mrap = await find(store, account, path[len("mrap/instances/") :])
        return xml_response(control_document("GetMultiRegionAccessPointResult", _report(mrap, "AccessPoint")))
    if operation == "GetMultiRegionAccessPointRoutes":
        mrap = await find(store, account, path[len("mrap/instances/") : -len("/routes")])
        routes = (
            node("Route", leaf("Bucket", r.bucket), leaf("Region", r.region), leaf("TrafficDialPercentage", r.dial))
            for r in mrap.routes
        )
        return xml_response(
            control_document("GetMultiRegionAccessPointRoutesResult", leaf("Mrap", mrap.name), node("Routes", *routes))
        )
    if operation == "SubmitMultiRegionAccessPointRoutes":
        mrap = await find(store, account, path[len("mrap/instances/") : -len("/routes")])
        await store.put_mrap(replace(mrap, routes=_updated_routes(mrap, await body())))
        return empty_response()
    if operation in ("PauseReplication", "ResumeReplication"):
        bucket = path.split("/")[2]
        await store.set_replication_paused(bucket, operation == "PauseReplication")
        return empty_response(204)
    raise S3Error("NotImplemented", "This S3 Control operation is not implemented by mrapsim.", 501)


async def find(store: Store, account: str, ref: str) -> MrapInfo:
    """An MRAP by name, alias or ARN (`arn:aws:s3::<account>:accesspoint/<alias>`)."""
    ref = ref.rsplit("accesspoint/", 1)[-1] if ref.startswith("arn:") else ref
    for mrap in await store.list_mraps():
        if mrap.account == account and ref in (mrap.name, mrap.alias):
            return mrap
    raise no_such_mrap(ref)


def _report(mrap: MrapInfo, tag: str) -> str:
    regions = (node("Region", leaf("Bucket", r.bucket), leaf("Region", r.region)) for r in mrap.routes)
    return node(
        tag,
        leaf("Name", mrap.name),
        leaf("Alias", mrap.alias),
        leaf("CreatedAt", iso_timestamp(mrap.created)),
        node(
            "PublicAccessBlock",
            *(leaf(n, True) for n in PUBLIC_ACCESS_BLOCK),
        ),
        leaf("Status", "READY"),
        node("Regions", *regions),
    )


def _updated_routes(mrap: MrapInfo, body: bytes) -> tuple[MrapRoute, ...]:
    root = parse_request_document(body, "SubmitMultiRegionAccessPointRoutesRequest")
    updates = root.find("RouteUpdates")
    routes = list(mrap.routes)
    for item in updates.findall("Route") if updates is not None else ():
        bucket, region = child_text(item, "Bucket"), child_text(item, "Region")
        dial_text = child_text(item, "TrafficDialPercentage") or ""
        if not dial_text.isdigit() or int(dial_text) > 100:
            raise S3Error("InvalidRequest", "TrafficDialPercentage must be an integer from 0 to 100.", 400)
        at = next((i for i, r in enumerate(routes) if bucket in (None, r.bucket) and region in (None, r.region)), None)
        if at is None or (bucket is None and region is None):
            raise S3Error("InvalidRequest", f"No route of {mrap.name} matches bucket {bucket} region {region}.", 400)
        routes[at] = replace(routes[at], dial=int(dial_text))
    return tuple(routes)


async def _create(account: str, store: Store, body: bytes, now: dt.datetime) -> S3Response:
    root = parse_request_document(body, "CreateMultiRegionAccessPointRequest")
    details = root.find("Details")
    name = child_text(details, "Name") if details is not None else None
    regions = details.find("Regions") if details is not None else None
    if not name or regions is None:
        raise malformed_xml()
    if not MRAP_NAME.fullmatch(name):
        raise S3Error("InvalidRequest", f"{name!r} is not a valid Multi-Region Access Point name.", 400)
    if any(m.name == name and m.account == account for m in await store.list_mraps()):
        raise S3Error("MultiRegionAccessPointAlreadyOwnedByYou", "You already own this access point.", 409)
    routes = []
    for item in regions.findall("Region"):
        bucket = child_text(item, "Bucket") or ""
        try:
            info = await store.get_bucket(bucket)
        except NoSuchBucketError:
            raise S3Error("NoSuchBucket", "The specified bucket does not exist", 404, BucketName=bucket) from None
        routes.append(MrapRoute(bucket, info.region, 100))
    if not routes:
        raise malformed_xml()
    alias = "".join(secrets.choice(ALIAS_ALPHABET) for _ in range(13)) + ".mrap"
    await store.put_mrap(MrapInfo(name, alias, account, now.replace(microsecond=0), tuple(routes)))
    token = _token(account, "create", {"name": name, "regions": [r.bucket for r in routes], "at": now.isoformat()})
    return xml_response(control_document("CreateMultiRegionAccessPointResult", leaf("RequestTokenARN", token)))


async def _delete(account: str, store: Store, body: bytes, now: dt.datetime) -> S3Response:
    root = parse_request_document(body, "DeleteMultiRegionAccessPointRequest")
    details = root.find("Details")
    name = child_text(details, "Name") if details is not None else None
    if not name:
        raise malformed_xml()
    mrap = await find(store, account, name)
    await store.delete_mrap(mrap.alias)
    token = _token(account, "delete", {"name": name, "at": now.isoformat()})
    return xml_response(control_document("DeleteMultiRegionAccessPointResult", leaf("RequestTokenARN", token)))


def _token(account: str, kind: str, operation: dict[str, object]) -> str:
    encoded = base64.urlsafe_b64encode(json.dumps(operation, separators=(",", ":")).encode()).decode().rstrip("=")
    return f"arn:aws:s3:{CONTROL_REGION}:{account}:async-request/mrap/{kind}/{encoded}"


def _describe(token_arn: str) -> S3Response:
    match = re.fullmatch(r"arn:aws:s3:[a-z0-9-]+:\d{12}:async-request/mrap/(create|delete)/([A-Za-z0-9_-]+)", token_arn)
    try:
        if match is None:
            raise ValueError(token_arn)
        padded = match.group(2) + "=" * (-len(match.group(2)) % 4)
        operation = json.loads(base64.urlsafe_b64decode(padded))
        name = str(operation["name"])
        created = dt.datetime.fromisoformat(str(operation["at"]))
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise S3Error("NoSuchAsyncRequest", "The specified async request does not exist.", 404) from None
    kind = match.group(1)
    if kind == "create":
        regions = node("Regions", *(node("Region", leaf("Bucket", b)) for b in operation.get("regions", [])))
        parameters = node("CreateMultiRegionAccessPointRequest", leaf("Name", name), regions)
    else:
        parameters = node("DeleteMultiRegionAccessPointRequest", leaf("Name", name))
    return xml_response(
        control_document(
            "DescribeMultiRegionAccessPointOperationResult",
            node(
                "AsyncOperation",
                leaf("CreationTime", iso_timestamp(created)),
                leaf("Operation", f"{kind.capitalize()}MultiRegionAccessPoint"),
                leaf("RequestTokenARN", token_arn),
                node("RequestParameters", parameters),
                leaf("RequestStatus", "SUCCEEDED"),
            ),
        )
    )
