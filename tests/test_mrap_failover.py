"""An MRAP over two versioned buckets in two Regions, replication lag 3 s (issue 11, must-shows 1
and 2): boto3 + awscrt by MRAP ARN through the edge (SigV4A, real names), aws-cli's s3control
with --endpoint-url for the routes, the buckets read directly on the s3 listener."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from mrapsim.exec import SITE_DIR
from mrapsim.exec_site.sitecustomize import CONNECT_VARIABLE
from tests.mrapsim_process import ACCESS_KEY, SECRET_KEY, MrapsimProcess, start_mrapsim

LAG = 3.0
ACCOUNT = "123456789012"
ALIAS = "failoverdemo.mrap"
ARN = f"arn:aws:s3::{ACCOUNT}:accesspoint/{ALIAS}"
AWSVIA = Path(__file__).parent / "interop" / "awsvia.py"
CONFIG = f"""
[replication]
lag = "{LAG}s"
[[buckets]]
name = "mrap-east"
region = "us-east-1"
[[buckets]]
name = "mrap-west"
region = "us-west-2"
[[mraps]]
alias = "{ALIAS}"
name = "failoverdemo"
account = "{ACCOUNT}"
buckets = ["mrap-east", "mrap-west"]
dials = {{ "mrap-east" = 100, "mrap-west" = 0 }}
"""

# boto3 with awscrt (SigV4A) by MRAP ARN; every *.amazonaws.com name goes to the edge.
BY_ARN = textwrap.dedent(
    """
    import json, sys
    import boto3
    from botocore.config import Config

    s3 = boto3.client("s3", region_name="us-east-1", config=Config(retries={"max_attempts": 1}))
    action, key = sys.argv[1], sys.argv[2]
    arn = sys.argv[-1]
    if action == "put":
        out = s3.put_object(Bucket=arn, Key=key, Body=sys.argv[3].encode())
        print(json.dumps({"version": out.get("VersionId")}))
    else:
        try:
            body = s3.get_object(Bucket=arn, Key=key)["Body"].read().decode()
            print(json.dumps({"body": body}))
        except s3.exceptions.NoSuchKey:
            print(json.dumps({"body": None}))
    """
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MrapsimProcess]:
    server = start_mrapsim(tmp_path_factory.mktemp("failover"), CONFIG)
    s3 = server.s3_client()
    for bucket in ("mrap-east", "mrap-west"):
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    yield server
    server.stop()


def client_env(server: MrapsimProcess) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MRAPSIM_"))},
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_CA_BUNDLE": str(server.ca),
    }


def by_arn(server: MrapsimProcess, *args: str) -> dict[str, Any]:
    env = client_env(server)
    env[CONNECT_VARIABLE] = f"127.0.0.1:{server.port('mrap')}"
    env["PYTHONPATH"] = os.pathsep.join([str(SITE_DIR), env.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, "-c", BY_ARN, *args, ARN], capture_output=True, text=True, timeout=60, env=env, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    found: dict[str, Any] = json.loads(result.stdout)
    return found


def s3control(server: MrapsimProcess, *args: str) -> Any:
    command = [
        sys.executable, str(AWSVIA), "--connect", f"127.0.0.1:{server.port('mrap')}", "--",
        "s3control", *args, "--account-id", ACCOUNT, "--region", "us-west-2",
        "--endpoint-url", f"https://localhost:{server.port('s3')}",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, env=client_env(server), check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout) if result.stdout.strip() else None


def head(server: MrapsimProcess, bucket: str, key: str) -> dict[str, Any] | None:
    s3 = server.s3_client()
    try:
        headers: dict[str, Any] = s3.head_object(Bucket=bucket, Key=key)["ResponseMetadata"]["HTTPHeaders"]
    except s3.exceptions.ClientError:
        return None
    return headers


def wait_for(predicate: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    return predicate()


def test_a_write_by_arn_replicates_after_the_lag(server: MrapsimProcess) -> None:
    started = time.monotonic()
    written = by_arn(server, "put", "one.txt", "first")
    assert written["version"]
    assert head(server, "mrap-west", "one.txt") is None  # not yet: the lag has not passed
    source = head(server, "mrap-east", "one.txt")
    assert source is not None and source["x-amz-replication-status"] in ("PENDING", "COMPLETED")
    replica = wait_for(lambda: head(server, "mrap-west", "one.txt"), timeout=LAG + 10)
    elapsed = time.monotonic() - started
    assert replica is not None and replica["x-amz-replication-status"] == "REPLICA"
    assert replica["x-amz-version-id"] == written["version"] and elapsed >= LAG
    assert head(server, "mrap-east", "one.txt")["x-amz-replication-status"] == "COMPLETED"  # type: ignore[index]
    metrics = server.admin_get("/metrics")
    assert 'mrapsim_replication_copies_total{source="mrap-east",target="mrap-west"}' in metrics


class ArnClient:
    """One long-lived boto3 + awscrt process by MRAP ARN (a process start costs seconds on a busy
    machine; the lag is 3 s): one JSON command per line in, one JSON answer per line out."""

    SCRIPT = textwrap.dedent(
        """
        import json, sys
        import boto3
        from botocore.config import Config

        s3 = boto3.client("s3", region_name="us-east-1", config=Config(retries={"max_attempts": 1}))
        arn = sys.argv[1]
        for line in sys.stdin:
            action, key, body = json.loads(line)
            if action == "put":
                out = s3.put_object(Bucket=arn, Key=key, Body=body.encode())
                print(json.dumps({"version": out.get("VersionId")}), flush=True)
            else:
                try:
                    print(json.dumps({"body": s3.get_object(Bucket=arn, Key=key)["Body"].read().decode()}), flush=True)
                except s3.exceptions.NoSuchKey:
                    print(json.dumps({"body": None}), flush=True)
        """
    )

    def __init__(self, server: MrapsimProcess) -> None:
        env = client_env(server)
        env[CONNECT_VARIABLE] = f"127.0.0.1:{server.port('mrap')}"
        env["PYTHONPATH"] = os.pathsep.join([str(SITE_DIR), env.get("PYTHONPATH", "")])
        self.process = subprocess.Popen(
            [sys.executable, "-c", self.SCRIPT, ARN], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )

    def call(self, action: str, key: str, body: str = "") -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps([action, key, body]) + "\n")
        self.process.stdin.flush()
        answer: dict[str, Any] = json.loads(self.process.stdout.readline())
        return answer

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(10)


def test_flipping_the_dials_serves_from_the_other_region_and_reads_can_be_stale(server: MrapsimProcess) -> None:
    client = ArnClient(server)
    try:
        client.call("put", "warm-up", "x")
        # Write one object after another by ARN while aws-cli flips the dials to 0/100.
        flip = subprocess.Popen(
            [
                sys.executable, str(AWSVIA), "--connect", f"127.0.0.1:{server.port('mrap')}", "--",
                "s3control", "submit-multi-region-access-point-routes", "--mrap", ARN, "--route-updates",
                "Bucket=mrap-east,TrafficDialPercentage=0", "Bucket=mrap-west,TrafficDialPercentage=100",
                "--account-id", ACCOUNT, "--region", "us-west-2", "--endpoint-url", f"https://localhost:{server.port('s3')}",
            ],
            env=client_env(server), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        written: dict[str, float] = {}
        while flip.poll() is None and len(written) < 2000:
            key = f"burst/{len(written):04d}"
            client.call("put", key, key)
            written[key] = time.monotonic()
        assert flip.wait(60) == 0, flip.stderr.read() if flip.stderr else ""
        puts = {e["key"]: e["bucket"] for e in server.logs() if e.get("event") == "request" and e.get("key") in written}
        last_east = max(key for key, bucket in puts.items() if bucket == "mrap-east")
        stale = client.call("get", last_east)
        age = time.monotonic() - written[last_east]
        print(f"{last_east} written in us-east-1 {age:.2f} s before the read through the flipped MRAP: {stale}")
        if age < LAG:  # not yet replicated to us-west-2, which now serves the MRAP: a miss
            assert stale == {"body": None}
        log = [e for e in server.logs() if e.get("event") == "request" and e.get("key") == last_east]
        assert (log[-1]["mrap"], log[-1]["bucket"], log[-1]["region"]) == (ALIAS, "mrap-west", "us-west-2")
        fresh = wait_for(lambda: client.call("get", last_east)["body"], timeout=LAG + 10)
        assert fresh == last_east  # after the lag the replica is there
    finally:
        client.close()
    routes = s3control(server, "get-multi-region-access-point-routes", "--mrap", ARN)
    assert {r["Bucket"]: r["TrafficDialPercentage"] for r in routes["Routes"]} == {"mrap-east": 0, "mrap-west": 100}
    connections = wait_for(
        lambda: [c for c in server.connections(listener="mrap") if c["mrap_routed"] == "mrap-west@us-west-2"], 10
    )
    assert connections, server.connections(listener="mrap")
    # and back: dials 100/0 again
    s3control(
        server, "submit-multi-region-access-point-routes", "--mrap", ARN, "--route-updates",
        "Bucket=mrap-east,TrafficDialPercentage=100", "Bucket=mrap-west,TrafficDialPercentage=0",
    )  # fmt: skip


def test_s3control_create_get_list_describe_delete(server: MrapsimProcess) -> None:
    created = s3control(
        server, "create-multi-region-access-point", "--details",
        '{"Name": "second", "PublicAccessBlock": {"BlockPublicAcls": true}, '
        '"Regions": [{"Bucket": "mrap-east"}, {"Bucket": "mrap-west"}]}',
    )  # fmt: skip
    token = created["RequestTokenARN"]
    described = s3control(server, "describe-multi-region-access-point-operation", "--request-token-arn", token)
    assert described["AsyncOperation"]["RequestStatus"] == "SUCCEEDED"
    assert described["AsyncOperation"]["Operation"] == "CreateMultiRegionAccessPoint"
    got = s3control(server, "get-multi-region-access-point", "--name", "second")["AccessPoint"]
    assert got["Alias"].endswith(".mrap") and got["Status"] == "READY"
    assert {r["Bucket"]: r["Region"] for r in got["Regions"]} == {"mrap-east": "us-east-1", "mrap-west": "us-west-2"}
    listed = s3control(server, "list-multi-region-access-points")["AccessPoints"]
    assert {"failoverdemo", "second"} <= {a["Name"] for a in listed}
    deleted = s3control(server, "delete-multi-region-access-point", "--details", '{"Name": "second"}')
    assert deleted["RequestTokenARN"]
    listed = s3control(server, "list-multi-region-access-points")["AccessPoints"]
    assert "second" not in {a["Name"] for a in listed}


def replication_control(server: MrapsimProcess, path: str) -> int:
    """`POST /v20180820/mrapsim/replication/<bucket>/pause|resume` (docs/failover.md), signed."""
    url = f"https://localhost:{server.port('s3')}/v20180820/mrapsim/replication/{path}"
    request = AWSRequest(method="POST", url=url, data=b"")
    S3SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", "us-east-1").add_auth(request)
    context = ssl.create_default_context(cafile=str(server.ca))
    raw = urllib.request.Request(url, data=b"", headers=dict(request.headers), method="POST")
    try:
        with urllib.request.urlopen(raw, context=context, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        raise AssertionError(error.read().decode()) from None


def mrap_backlog(server: MrapsimProcess, name: str = "failoverdemo") -> tuple[int, dict[str, int]]:
    """`GET /mraps`: that MRAP's replication backlog, and its routes' by bucket."""
    [mrap] = [m for m in server.admin_get("/mraps") if m["name"] == name]
    return mrap["backlog"], {route["bucket"]: route["backlog"] for route in mrap["routes"]}


def test_a_paused_region_builds_a_backlog_and_drains_on_resume(server: MrapsimProcess) -> None:
    assert replication_control(server, "mrap-west/pause") == 204
    by_arn(server, "put", "while-down.txt", "x")
    time.sleep(LAG + 1)
    assert head(server, "mrap-west", "while-down.txt") is None
    assert 'mrapsim_replication_backlog{bucket="mrap-west"} 1.0' in server.admin_get("/metrics")
    assert mrap_backlog(server) == (1, {"mrap-east": 0, "mrap-west": 1})
    assert replication_control(server, "mrap-west/resume") == 204
    replica = wait_for(lambda: head(server, "mrap-west", "while-down.txt"), timeout=10)
    assert replica is not None and replica["x-amz-replication-status"] == "REPLICA"
    assert wait_for(lambda: mrap_backlog(server)[0] == 0, timeout=10)


def test_two_workers_over_sqlite_replicate_each_version_once(start_server: Any, tmp_path: Path) -> None:
    """Both workers run a replicator over the one queue in the store; each copy is claimed once.
    The queue's backlog is the store's, read alike by both workers: the supervisor's `/mraps` and
    `/metrics` show it once, not once per worker."""
    server = start_server(
        f'workers = 2\n[store]\nkind = "sqlite"\npath = "{tmp_path / "data"}"\n'
        + CONFIG.replace(f'lag = "{LAG}s"', 'lag = "500ms"')
    )
    s3 = server.s3_client()
    for bucket in ("mrap-east", "mrap-west"):
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    assert replication_control(server, "mrap-west/pause") == 204
    written = {}
    for i in range(20):
        written[f"w/{i:02d}"] = s3.put_object(Bucket="mrap-east", Key=f"w/{i:02d}", Body=b"x")["VersionId"]
    upload = s3.create_multipart_upload(Bucket="mrap-east", Key="w/multipart")
    part = s3.upload_part(Bucket="mrap-east", Key="w/multipart", UploadId=upload["UploadId"], PartNumber=1, Body=b"y")
    done = s3.complete_multipart_upload(
        Bucket="mrap-east", Key="w/multipart", UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )  # fmt: skip
    written["w/multipart"] = done["VersionId"]
    assert mrap_backlog(server) == (len(written), {"mrap-east": 0, "mrap-west": len(written)})
    gauge = f'mrapsim_replication_backlog{{bucket="mrap-west"}} {float(len(written))}'
    assert wait_for(lambda: gauge in server.admin_get("/metrics"), timeout=10)
    assert replication_control(server, "mrap-west/resume") == 204

    def replicas() -> dict[str, list[str]]:
        listed = s3.list_object_versions(Bucket="mrap-west", Prefix="w/").get("Versions", [])
        found: dict[str, list[str]] = {}
        for version in listed:
            found.setdefault(version["Key"], []).append(version["VersionId"])
        return found

    assert wait_for(lambda: len(replicas()) == len(written), timeout=20)
    time.sleep(1.5)  # a second copy, were there one, would have landed by now
    assert replicas() == {key: [version] for key, version in written.items()}
    for key in ("w/00", "w/multipart"):
        assert s3.head_object(Bucket="mrap-east", Key=key)["ReplicationStatus"] == "COMPLETED"
    assert mrap_backlog(server) == (0, {"mrap-east": 0, "mrap-west": 0})


def test_the_admin_api_reads_and_sets_the_dials(server: MrapsimProcess) -> None:
    def put(path: str, document: object) -> tuple[int, Any]:
        return server.admin_json("PUT", path, document)

    status, updated = put("/mraps/failoverdemo/routes", {"mrap-east": 40, "mrap-west": 60})
    assert status == 200 and {r["bucket"]: r["dial"] for r in updated["routes"]} == {"mrap-east": 40, "mrap-west": 60}
    listed = {m["name"]: m for m in server.admin_get("/mraps")}
    assert {r["bucket"]: r["dial"] for r in listed["failoverdemo"]["routes"]} == {"mrap-east": 40, "mrap-west": 60}
    routes = s3control(server, "get-multi-region-access-point-routes", "--mrap", ARN)
    assert {r["Bucket"]: r["TrafficDialPercentage"] for r in routes["Routes"]} == {"mrap-east": 40, "mrap-west": 60}
    assert put("/mraps/failoverdemo/routes", {"mrap-east": 101})[0] == 400
    assert put("/mraps/nope/routes", {})[0] == 404
    assert put(f"/mraps/{ARN}/routes", {"mrap-east": 100, "mrap-west": 0})[0] == 200


def test_delete_markers_from_delete_objects_replicate_too(server: MrapsimProcess) -> None:
    """DeleteObjects (what s3fs and rclone send) adds a delete marker per key, like DeleteObject,
    and each one replicates to the other bucket after the lag."""
    s3 = server.s3_client()
    s3.put_object(Bucket="mrap-east", Key="batch/gone.txt", Body=b"soon gone")
    assert wait_for(lambda: head(server, "mrap-west", "batch/gone.txt"), timeout=LAG + 10)
    answer = s3.delete_objects(Bucket="mrap-east", Delete={"Objects": [{"Key": "batch/gone.txt"}]})
    marker = answer["Deleted"][0]["DeleteMarkerVersionId"]

    def replicated_marker() -> bool:
        versions = s3.list_object_versions(Bucket="mrap-west", Prefix="batch/")
        return any(m["VersionId"] == marker and m["IsLatest"] for m in versions.get("DeleteMarkers", []))

    assert wait_for(replicated_marker, timeout=LAG + 10)
    assert head(server, "mrap-west", "batch/gone.txt") is None
