"""Buckets have a Region: GetBucketLocation, `x-amz-bucket-region`, CreateBucket's
LocationConstraint, and SigV4 bound to the bucket's Region (on an MRAP host, the routed
bucket's) while SigV4A is bound to none."""

from __future__ import annotations

import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import trio
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config as BotoConfig
from botocore.credentials import Credentials
from botocore.crt.auth import CrtS3SigV4AsymAuth

from mrapsim.config import load_config
from mrapsim.s3 import RequestRecord, create_app
from mrapsim.store import MemoryStore, seed_store
from tests.s3.conftest import ACCESS_KEY, SECRET_KEY, LiveServer, RawResponse, send, serving

MRAP_ALIAS = "regional1234.mrap"
MRAP_HOST = f"{MRAP_ALIAS}.accesspoint.s3-global.amazonaws.com"


@pytest.fixture(scope="module")
def regional() -> Iterator[LiveServer]:
    config = load_config(
        overrides={
            "buckets": [{"name": "south", "region": "ap-south-1", "objects": {"k.txt": "south\n"}}, {"name": "east"}],
            "mraps": [{"alias": MRAP_ALIAS, "account": "123456789012", "buckets": ["south"]}],
        }
    )
    store = MemoryStore()
    trio.run(seed_store, store, config)
    records: list[RequestRecord] = []
    with serving(create_app(config, store, on_request=records.append)) as url:
        yield LiveServer(url, int(url.rsplit(":", 1)[1]), config, store, records)


def client(url: str, region: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name=region,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=BotoConfig(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def header_signed(url: str, region: str, host: str | None = None) -> RawResponse:
    request = AWSRequest(method="GET", url=url, headers={"host": host} if host else {})
    S3SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", region).add_auth(request)
    return send(urllib.request.Request(url, headers=dict(request.headers)))


def presigned(url: str, region: str, host: str | None = None) -> RawResponse:
    request = AWSRequest(method="GET", url=url, headers={"host": host} if host else {})
    S3SigV4QueryAuth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", region, expires=60).add_auth(request)
    return send(urllib.request.Request(request.url, headers={"host": host} if host else {}))


def error_of(response: RawResponse) -> tuple[str | None, str | None, str | None]:
    root = ET.fromstring(response.body)
    return root.findtext("Code"), root.findtext("Message"), root.findtext("Region")


def test_location_and_bucket_region_header(regional: LiveServer) -> None:
    s3 = client(regional.url, "ap-south-1")
    assert s3.get_bucket_location(Bucket="south")["LocationConstraint"] == "ap-south-1"
    assert s3.head_bucket(Bucket="south")["ResponseMetadata"]["HTTPHeaders"]["x-amz-bucket-region"] == "ap-south-1"
    east = client(regional.url, "us-east-1")
    assert east.get_bucket_location(Bucket="east")["LocationConstraint"] is None
    regions = {b["Name"]: b.get("BucketRegion") for b in east.list_buckets()["Buckets"]}
    assert regions["south"] == "ap-south-1" and regions["east"] == "us-east-1"


def test_create_bucket_with_a_location_constraint(regional: LiveServer) -> None:
    s3 = client(regional.url, "eu-west-3")
    s3.create_bucket(Bucket="paris", CreateBucketConfiguration={"LocationConstraint": "eu-west-3"})
    assert s3.get_bucket_location(Bucket="paris")["LocationConstraint"] == "eu-west-3"
    with pytest.raises(s3.exceptions.ClientError) as caught:
        client(regional.url, "us-east-1").create_bucket(
            Bucket="nowhere", CreateBucketConfiguration={"LocationConstraint": "moon"}
        )
    assert caught.value.response["Error"]["Code"] == "InvalidLocationConstraint"


def test_sigv4_scoped_to_another_region_is_refused_naming_the_bucket_s(regional: LiveServer) -> None:
    url = f"{regional.url}/south/k.txt"
    header = header_signed(url, "us-east-1")
    assert header.status == 400 and header.headers["x-amz-bucket-region"] == "ap-south-1"
    assert error_of(header) == (
        "AuthorizationHeaderMalformed",
        "The authorization header is malformed; the region 'us-east-1' is wrong; expecting 'ap-south-1'",
        "ap-south-1",
    )
    query = presigned(url, "us-east-1")
    assert query.status == 400
    assert error_of(query) == (
        "AuthorizationQueryParametersError",
        "Error parsing the X-Amz-Credential parameter; the region 'us-east-1' is wrong; expecting 'ap-south-1'",
        "ap-south-1",
    )
    assert header_signed(url, "ap-south-1").body == b"south\n"
    assert presigned(url, "ap-south-1").body == b"south\n"


def test_on_the_mrap_host_sigv4_is_bound_to_the_routed_bucket_and_sigv4a_to_none(regional: LiveServer) -> None:
    url = f"{regional.url}/k.txt"
    wrong = header_signed(url, "us-east-1", host=MRAP_HOST)
    assert wrong.status == 400 and error_of(wrong)[0] == "AuthorizationHeaderMalformed"
    assert error_of(presigned(url, "us-west-2", host=MRAP_HOST))[2] == "ap-south-1"
    assert header_signed(url, "ap-south-1", host=MRAP_HOST).body == b"south\n"
    assert presigned(url, "ap-south-1", host=MRAP_HOST).body == b"south\n"
    request = AWSRequest(method="GET", url=f"https://{MRAP_HOST}/k.txt")
    CrtS3SigV4AsymAuth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", "*").add_auth(request)
    sigv4a = send(urllib.request.Request(url, headers=dict(request.headers)))
    assert sigv4a.status == 200 and sigv4a.body == b"south\n"


def test_boto3_follows_the_region_in_the_error(regional: LiveServer) -> None:
    """botocore's S3 region redirector reads `<Region>` and retries signed for it, as with S3."""
    s3 = client(regional.url, "us-east-1")
    assert s3.get_object(Bucket="south", Key="k.txt")["Body"].read() == b"south\n"


def test_the_routing_rule() -> None:
    import datetime as dt
    import random

    from mrapsim.s3.errors import S3Error
    from mrapsim.s3.mraps import choose_route
    from mrapsim.store import MrapInfo, MrapRoute

    def mrap(*dials: int, client_region: str | None = None) -> MrapInfo:
        routes = tuple(MrapRoute(f"b{i}", ("us-east-1", "us-west-2", "eu-west-1")[i], d) for i, d in enumerate(dials))
        return MrapInfo("m", "m.mrap", "123456789012", dt.datetime.now(dt.UTC), routes, client_region)

    rng = random.Random(7)
    assert {choose_route(mrap(100, 0), rng).bucket for _ in range(50)} == {"b0"}
    assert {choose_route(mrap(0, 100), rng).bucket for _ in range(50)} == {"b1"}
    assert {choose_route(mrap(100, 100, client_region="us-west-2"), rng).bucket for _ in range(50)} == {"b1"}
    assert {choose_route(mrap(100, 0, client_region="us-west-2"), rng).bucket for _ in range(50)} == {"b0"}
    draws = [choose_route(mrap(75, 25), rng).bucket for _ in range(2000)]
    assert 1300 < draws.count("b0") < 1700  # proportional to the dials
    with pytest.raises(S3Error) as none_active:
        choose_route(mrap(0, 0), rng)
    assert none_active.value.status == 503


def test_an_mrap_request_is_routed_by_the_dials_and_recorded() -> None:
    config = load_config(
        overrides={
            "buckets": [{"name": "east1", "region": "us-east-1"}, {"name": "west2", "region": "us-west-2"}],
            "mraps": [
                {
                    "alias": "failover1.mrap",
                    "account": "123456789012",
                    "buckets": ["east1", "west2"],
                    "dials": {"east1": 0, "west2": 100},
                }
            ],
        }
    )
    store = MemoryStore()
    trio.run(seed_store, store, config)
    records: list[RequestRecord] = []
    with serving(create_app(config, store, on_request=records.append)) as url:
        host = "failover1.mrap.accesspoint.s3-global.amazonaws.com"
        request = AWSRequest(method="PUT", url=f"https://{host}/k", data=b"v")
        CrtS3SigV4AsymAuth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", "*").add_auth(request)
        sent = send(urllib.request.Request(f"{url}/k", data=b"v", headers=dict(request.headers), method="PUT"))
        assert sent.status == 200, sent.body
    assert trio.run(store.head_object, "west2", "k").size == 1
    record = records[-1]
    assert (record.mrap, record.bucket, record.region) == ("failover1.mrap", "west2", "us-west-2")


def test_a_credential_that_cannot_sign_sigv4a_gets_a_500_on_mrap_hosts_only() -> None:
    config = load_config(
        overrides={
            "auth": {
                "mode": "sigv4",
                "credentials": [
                    {"access_key": ACCESS_KEY, "secret_key": SECRET_KEY},
                    {"access_key": "ASIAGLOBALSTS", "secret_key": "temporary", "sigv4a": False},
                ],
            }
        }
    )
    store = MemoryStore()
    trio.run(seed_store, store, config)
    with serving(create_app(config, store)) as url:
        host = "mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com"
        request = AWSRequest(method="GET", url=f"https://{host}/hello.txt")
        CrtS3SigV4AsymAuth(Credentials("ASIAGLOBALSTS", "temporary"), "s3", "*").add_auth(request)
        refused = send(urllib.request.Request(f"{url}/hello.txt", headers=dict(request.headers)))
        assert refused.status == 500 and error_of(refused)[0] == "InternalError"
        request = AWSRequest(method="GET", url=f"https://{host}/hello.txt")
        CrtS3SigV4AsymAuth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", "*").add_auth(request)
        assert send(urllib.request.Request(f"{url}/hello.txt", headers=dict(request.headers))).status == 200
        direct = f"{url}/mraps3sample/hello.txt"
        request = AWSRequest(method="GET", url=direct)
        S3SigV4Auth(Credentials("ASIAGLOBALSTS", "temporary"), "s3", "us-east-1").add_auth(request)
        assert send(urllib.request.Request(direct, headers=dict(request.headers))).status == 200
