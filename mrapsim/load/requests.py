"""From a task to the bytes of an S3 request: path, query, headers, body, SigV4.

Pure: a task, the endpoint, a random generator and a sequence number in; a `PreparedRequest`
out. Keys live under the run's key prefix so that a load run never touches other objects:
get/head read `<prefix>obj-<size>` (written once before the run by `seed_requests`), put writes
`<prefix>put/<size>-<user>-<n mod 100>` (a bounded key space, so a long run does not grow the
store without end).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from mrapsim.load.client import Endpoint
from mrapsim.load.scenario import TaskKind, TaskSpec
from mrapsim.load.sigv4 import EMPTY_SHA256, Signer, query_string, uri_encode_path

USER_AGENT = "mrapsim-load/1"
PUT_KEYS_PER_USER = 100


@dataclass(frozen=True)
class Body:
    data: bytes
    sha256: str

    @classmethod
    def of_size(cls, size: int) -> Body:
        pattern = bytes(range(32, 127))
        data = (pattern * (size // len(pattern) + 1))[:size]
        return cls(data, hashlib.sha256(data).hexdigest())


EMPTY_BODY = Body(b"", EMPTY_SHA256)


@dataclass(frozen=True)
class PreparedRequest:
    method: str
    path: str  # raw, not encoded
    query: tuple[tuple[str, str], ...]
    body: Body
    extra_headers: tuple[tuple[str, str], ...] = ()

    @property
    def target(self) -> str:
        encoded = uri_encode_path(self.path)
        return f"{encoded}?{query_string(self.query)}" if self.query else encoded

    def headers(self, endpoint: Endpoint, signer: Signer | None) -> list[tuple[str, str]]:
        host = endpoint.host_header
        headers = [("host", host), ("user-agent", USER_AGENT), *self.extra_headers]
        if self.body.data or self.method == "PUT":
            headers.append(("content-length", str(len(self.body.data))))
        if signer is not None:
            signed = {"host": host, **dict(self.extra_headers)}
            headers.extend(signer.sign(self.method, self.path, self.query, signed, self.body.sha256).items())
        return headers


def object_key(key_prefix: str, size: int) -> str:
    return f"{key_prefix}obj-{size}"


def build_request(
    task: TaskSpec,
    endpoint: Endpoint,
    key_prefix: str,
    bodies: dict[int, Body],
    rng: random.Random,
    user: int,
    sequence: int,
) -> PreparedRequest:
    base = endpoint.base_path
    if task.kind is TaskKind.LIST:
        query = (("list-type", "2"), ("max-keys", str(task.max_keys)), ("prefix", task.prefix))
        return PreparedRequest("GET", base + "/", query, EMPTY_BODY)
    size = task.sizes[0] if len(task.sizes) == 1 else rng.choice(task.sizes)
    if task.kind is TaskKind.PUT:
        key = f"{key_prefix}put/{size}-{user}-{sequence % PUT_KEYS_PER_USER}"
        return PreparedRequest("PUT", f"{base}/{key}", (), bodies[size])
    key = task.key if task.key is not None else object_key(key_prefix, size)
    extra: tuple[tuple[str, str], ...] = ()
    if task.kind is TaskKind.GET and task.ranges:
        extra = (("range", "bytes=" + rng.choice(task.ranges)),)
    return PreparedRequest(task.method, f"{base}/{key}", (), EMPTY_BODY, extra)


def seed_requests(sizes: tuple[int, ...], endpoint: Endpoint, key_prefix: str) -> list[PreparedRequest]:
    """The PUTs that create the objects get/head tasks read."""
    return [
        PreparedRequest("PUT", f"{endpoint.base_path}/{object_key(key_prefix, size)}", (), Body.of_size(size))
        for size in sizes
    ]
