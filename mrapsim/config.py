"""Configuration: embedded defaults, a TOML file layered over them, environment and flags.

Everything is validated once, at start-up, into frozen dataclasses. A bad value raises
`ConfigError` naming the setting (`listeners.mrap.stall_timeout: ...`); the CLI turns it into one
line on stderr and exit code 2.

Layering rules: tables merge key by key; `[[buckets]]` merge by `name` and `[[mraps]]` by
`alias` (so a file can add a bucket without repeating the seeded one); every other array
(routes, credentials, alpn, faults) replaces the default wholesale.
"""

from __future__ import annotations

import copy
import ipaddress
import re
import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, cast

import tomli_w

from mrapsim.cores import usable_cores
from mrapsim.names import format_host_port, normalize_name
from mrapsim.outcomes import DropAction

# The defaults are the real MRAP edge's behaviour, as measured (docs/proxies.md, CHANGELOG.md):
# - ALPN http/1.1 on both listeners: AWS S3 selects http/1.1 when a client offers h2,http/1.1 (a
#   published sweep of 23 object-storage endpoints, 2026-09: AWS S3 "picks http/1.1"; ClickHouse
#   issue 118563). h2 stays available as a configuration choice.
# - stall_timeout 300 s: longer than every common proxy's default connect/handshake timeout (nginx
#   proxy_connect_timeout 60 s, Envoy's cluster connect_timeout 5 s, HAProxy `timeout connect`,
#   squid connect_timeout 1 min), so the proxy's own timer fires first and its symptom is the real
#   one, not a race with mrapsim closing the stall.
# - max_stalled 4096 per listener: 300 s stalls would otherwise let a retrying proxy or a scan hold
#   unbounded sockets; beyond the cap the oldest stall is closed (counted and logged).
# - admin on 9911: 9901 is Envoy's admin default, and Envoy often runs beside mrapsim.
DEFAULT_TOML = """\
log_format = "text"
workers = 1
certs_dir = "./certs"

[admin]
address = "127.0.0.1:9911"
token = ""
allowed_hosts = []

[tls]
key_type = "ecdsa"
minted_dir = ""

[listeners.mrap]
enabled = true
address = "0.0.0.0:8443"
sni = "required"
on_missing_sni = "stall"
on_unknown_sni = "stall"
alpn = ["http/1.1"]
stall_timeout = "300s"
max_stalled = 4096
client_hello_timeout = "10s"
max_client_hello = 16384

[[listeners.mrap.routes]]
match = "*.mrap.accesspoint.s3-global.amazonaws.com"
target = "builtin"

[listeners.s3]
enabled = true
address = "0.0.0.0:8444"
sni = "optional"
on_missing_sni = "stall"
on_unknown_sni = "stall"
alpn = ["http/1.1"]
stall_timeout = "300s"
max_stalled = 4096
client_hello_timeout = "10s"
max_client_hello = 16384

[[listeners.s3.routes]]
match = "s3.amazonaws.com"
target = "builtin"

[[listeners.s3.routes]]
match = "*.s3.amazonaws.com"
target = "builtin"

[[listeners.s3.routes]]
match = "s3.*.amazonaws.com"
target = "builtin"

[[listeners.s3.routes]]
match = "*.s3.*.amazonaws.com"
target = "builtin"

[[listeners.s3.routes]]
match = "localhost"
target = "builtin"

[[listeners.s3.routes]]
match = "*.localhost"
target = "builtin"

[auth]
mode = "sigv4"
sigv2 = true

[[auth.credentials]]
access_key = "AKIAIOSFODNN7EXAMPLE"
secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

[[mraps]]
alias = "mfzwi23gnjvgw.mrap"
account = "123456789012"
buckets = ["mraps3sample"]

[[buckets]]
name = "mraps3sample"

[buckets.objects]
"hello.txt" = "hello from mrapsim\\n"
"README.md" = "This bucket sits behind the MRAP mfzwi23gnjvgw.mrap.\\n"
"data/one.csv" = "id,name\\n1,one\\n"
"data/two.csv" = "id,name\\n2,two\\n"

[store]
kind = "memory"
path = "./data"

[limits]
body_timeout = "30m"
body_min_rate = 1024
body_rate_grace = "10s"
max_document = 4194304
max_discard = 65536
connections_per_listener = 10000
connections_per_peer = 2048
fd_reserve = 64
minted_certificates = 256
"""

REDACTED = "<redacted>"

# The Region of a bucket that names none (S3's own default for CreateBucket without a constraint).
DEFAULT_REGION = "us-east-1"
REGION_NAME = re.compile(r"[a-z]{2}(?:-[a-z]+)+-\d{1,2}")

BUILTIN = "builtin"


class ConfigError(ValueError):
    """A configuration value that cannot be used; `setting` names it in dotted form."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"{setting}: {message}")
        self.setting = setting
        self.message = message


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return format_host_port(self.host, self.port)


def is_loopback_host(host: str) -> bool:
    """True for `localhost` and loopback IP literals; a wildcard (0.0.0.0, ::) is not loopback."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Route:
    match: str
    target: str  # "builtin" or "tcp://host:port"
    upstream: Address | None  # parsed from a tcp:// target, None for builtin

    @property
    def is_builtin(self) -> bool:
        return self.upstream is None


@dataclass(frozen=True)
class ListenerConfig:
    name: str
    address: Address
    sni_required: bool
    on_missing_sni: DropAction
    on_unknown_sni: DropAction
    alpn: tuple[str, ...]
    stall_timeout: float
    max_stalled: int  # stalled connections held at once; beyond it the oldest is closed
    client_hello_timeout: float
    max_client_hello: int
    routes: tuple[Route, ...]


@dataclass(frozen=True)
class Credential:
    access_key: str
    secret_key: str
    # False: a key pair whose session cannot sign SigV4A (temporary credentials from the global
    # STS endpoint); MRAP hosts answer its requests with S3's bare 500, every other host serves it.
    sigv4a: bool = True


@dataclass(frozen=True)
class AuthConfig:
    mode: Literal["sigv4", "none"]
    credentials: tuple[Credential, ...]
    # SigV2 (header `AWS AKID:sig`, query `AWSAccessKeyId`/`Signature`/`Expires`) is accepted as
    # S3 still accepts it where the Region allows it; false refuses it, to rehearse its removal.
    sigv2: bool = True

    def can_sign_sigv4a(self, access_key: str | None) -> bool:
        return all(c.sigv4a for c in self.credentials if c.access_key == access_key)

    def secret_for(self, access_key: str) -> str | None:
        for credential in self.credentials:
            if credential.access_key == access_key:
                return credential.secret_key
        return None


@dataclass(frozen=True)
class ReplicationConfig:
    """How long a new version takes to reach an MRAP's other buckets: `lag` seconds, plus a
    uniform draw in [-jitter, +jitter] from a generator seeded with `seed`."""

    lag: float = 0.0
    jitter: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class MrapConfig:
    alias: str
    account: str
    buckets: tuple[str, ...]
    name: str = ""  # S3 Control's Name; "" → the alias without ".mrap"
    dials: tuple[int, ...] = ()  # per bucket, 0–100; () → 100 each (active/active)
    client_region: str | None = None  # the nearest active bucket is the one in this Region

    @property
    def host(self) -> str:
        return f"{self.alias}.accesspoint.s3-global.amazonaws.com"


class KeyFormatError(ValueError):
    """A synthetic key format whose key order would not be its index order."""


ZERO_PADDED = re.compile(r"0(?:>)?(\d+)([dxXob]?)")
BASES = {"": 10, "d": 10, "x": 16, "X": 16, "o": 8, "b": 2}


@dataclass(frozen=True)
class KeyLayout:
    """Where the index sits in a synthetic bucket's keys: `prefix`, `width` digits in `base`,
    `suffix`. Listing needs key order to equal index order, so `{i}` must be zero-padded to a
    fixed width (store/synthetic.py says what that buys)."""

    prefix: str
    suffix: str
    width: int
    base: int

    @classmethod
    def parse(cls, key_format: str, count: int) -> KeyLayout:
        """The layout of keys `key_format.format(i=i)` for i in [0, count). Raises KeyFormatError."""
        try:
            fields = list(string.Formatter().parse(key_format))
            key_format.format(i=0)
        except (KeyError, IndexError, ValueError) as exc:
            raise KeyFormatError(f"must format with {{i}}: {exc}") from exc
        named = [(literal, name, spec, conversion) for literal, name, spec, conversion in fields if name is not None]
        if len(named) != 1 or named[0][1] != "i" or named[0][3] is not None:
            raise KeyFormatError(f"{key_format!r} must contain {{i}} exactly once, without a conversion")
        padded = ZERO_PADDED.fullmatch(named[0][2] or "")
        first, last = key_format.format(i=0), key_format.format(i=max(count - 1, 0))
        if count > 1 and (padded is None or len(first) != len(last)):
            raise KeyFormatError(
                f"{key_format!r} must zero-pad {{i}} to a fixed width wide enough for {count} keys "
                f"(e.g. 'obj/{{i:0{len(str(count - 1))}d}}') so that key order is index order; "
                f"it gives {first!r} … {last!r}"
            )
        at = fields.index(next(f for f in fields if f[1] is not None))
        prefix = "".join(f[0] for f in fields[: at + 1])
        suffix = "".join(f[0] for f in fields[at + 1 :])
        width = len(first) - len(prefix) - len(suffix)
        return cls(prefix, suffix, width, BASES[padded.group(2) if padded else ""])


@dataclass(frozen=True)
class SyntheticSpec:
    """A synthetic key space; its key format is checked once, here (raises KeyFormatError)."""

    keys: int
    key_format: str
    size: int
    seed: int
    layout: KeyLayout = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "layout", KeyLayout.parse(self.key_format, self.keys))


@dataclass(frozen=True)
class BucketConfig:
    name: str
    objects: tuple[tuple[str, bytes], ...] = ()
    synthetic: SyntheticSpec | None = None
    region: str = DEFAULT_REGION


@dataclass(frozen=True)
class StoreConfig:
    kind: Literal["memory", "sqlite"]
    path: Path


@dataclass(frozen=True)
class Limits:
    """What one client may cost (README, "Limits"); every limit is counted in /metrics."""

    body_timeout: float = 1800.0  # a request body must arrive within this long
    body_min_rate: int = 1024  # bytes/s on average once body_rate_grace has passed; 0: no minimum
    body_rate_grace: float = 10.0
    max_document: int = 4 * 1024 * 1024  # request XML documents (DeleteObjects, CompleteMultipartUpload, ...)
    max_discard: int = 64 * 1024  # body bytes read and dropped after an early error; more: the connection closes
    connections_per_listener: int = 10_000
    connections_per_peer: int = 2_048
    fd_reserve: int = 64  # file descriptors kept free for the admin API, logs and the store
    minted_certificates: int = 256  # minted leaves kept, in memory and on disk (least recently used go)


@dataclass(frozen=True)
class Config:
    admin: Address
    listeners: tuple[ListenerConfig, ...]
    auth: AuthConfig
    mraps: tuple[MrapConfig, ...]
    buckets: tuple[BucketConfig, ...]
    store: StoreConfig
    certs_dir: Path
    key_type: Literal["ecdsa", "rsa"]
    minted_dir: Path | None
    log_format: Literal["text", "json"]
    workers: int
    faults: tuple[Mapping[str, Any], ...] = ()
    admin_token: str | None = None  # a bearer token for the admin API; None: none configured
    admin_allowed_hosts: tuple[str, ...] = ()  # Host names accepted besides loopback and IP literals
    limits: Limits = field(default_factory=lambda: Limits())
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    replication: ReplicationConfig = field(default_factory=lambda: ReplicationConfig())

    def listener(self, name: str) -> ListenerConfig:
        for listener in self.listeners:
            if listener.name == name:
                return listener
        raise KeyError(name)


# ---------------------------------------------------------------------------------------------
# Layering


def default_document() -> dict[str, Any]:
    return tomllib.loads(DEFAULT_TOML)


def merge(base: dict[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """Layer `overlay` over `base` (see the module comment for the rules); returns a new dict."""
    merged = copy.deepcopy(base)
    for key, value in overlay.items():
        if key in ("buckets", "mraps") and isinstance(value, list) and all(isinstance(v, Mapping) for v in value):
            merged[key] = _merge_by(merged.get(key, []), value, "name" if key == "buckets" else "alias")
        elif isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _merge_by(base: list[Any], overlay: list[Any], key: str) -> list[Any]:
    result = list(base)
    for item in overlay:
        ident = item.get(key) if isinstance(item, Mapping) else None
        at = next((i for i, old in enumerate(result) if isinstance(old, Mapping) and old.get(key) == ident), None)
        if at is None:
            result.append(copy.deepcopy(item))
        else:  # the same bucket or MRAP: its tables (a bucket's objects) merge key by key too
            result[at] = merge(result[at], item) if isinstance(item, Mapping) else copy.deepcopy(item)
    return result


def read_toml_file(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError("--config", f"cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError("--config", f"{path} is not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("--config", f"{path} is not valid TOML: {exc}") from exc


def load_config(file: Path | None = None, overrides: Mapping[str, Any] | None = None) -> Config:
    """Defaults, then `file`, then `overrides` (already shaped like the TOML document)."""
    document = default_document()
    if file is not None:
        document = merge(document, read_toml_file(file))
    if overrides:
        document = merge(document, overrides)
    return parse_config(_with_listener_defaults(document))


def _with_listener_defaults(document: dict[str, Any]) -> dict[str, Any]:
    """Every listener spelled out with the defaults it gets, so that `mrapsim config` prints
    every key of a listener a file added."""
    listeners = document.get("listeners")
    if isinstance(listeners, dict):
        for name, table in listeners.items():
            if isinstance(table, dict):
                listeners[name] = {**copy.deepcopy(LISTENER_DEFAULTS), **table}
    return document


def listen_override(spec: str) -> dict[str, Any]:
    """`NAME=HOST:PORT` (the `--listen` flag) as a document fragment."""
    name, sep, address = spec.partition("=")
    if not sep or not name:
        raise ConfigError("--listen", f"{spec!r} is not NAME=HOST:PORT")
    parse_address(address, f"--listen {name}")
    return {"listeners": {name: {"address": address}}}


# ---------------------------------------------------------------------------------------------
# Validation into dataclasses


def parse_config(document: Mapping[str, Any]) -> Config:
    known = {
        "admin",
        "listeners",
        "auth",
        "mraps",
        "buckets",
        "store",
        "certs_dir",
        "tls",
        "log_format",
        "workers",
        "faults",
        "limits",
        "replication",
    }
    _reject_unknown(document, known, "")
    listeners_doc = _table(document, "listeners", "listeners")
    if not listeners_doc:
        raise ConfigError("listeners", "at least one listener is needed")
    parsed = [
        (parse_listener(name, {**LISTENER_DEFAULTS, **_as_table(value, f"listeners.{name}")}), value)
        for name, value in listeners_doc.items()
    ]
    listeners = tuple(listener for listener, value in parsed if value.get("enabled", True) is not False)
    if not listeners:
        raise ConfigError("listeners", "every listener is disabled; enable at least one")
    _reject_shared_addresses(listeners)
    buckets = tuple(
        parse_bucket(_as_table(b, f"buckets[{i}]"), f"buckets[{i}]")
        for i, b in enumerate(_array(document, "buckets", "buckets"))
    )
    _reject_duplicates([b.name for b in buckets], "buckets", "bucket name")
    mraps = tuple(
        parse_mrap(_as_table(m, f"mraps[{i}]"), f"mraps[{i}]") for i, m in enumerate(_array(document, "mraps", "mraps"))
    )
    _reject_duplicates([m.alias for m in mraps], "mraps", "alias")
    tls_doc = _table(document, "tls", "tls")
    _reject_unknown(tls_doc, {"key_type", "minted_dir"}, "tls")
    admin_doc = _table(document, "admin", "admin")
    _reject_unknown(admin_doc, {"address", "token", "allowed_hosts"}, "admin")
    admin = parse_address(_str(admin_doc, "address", "admin.address"), "admin.address")
    admin_token = parse_admin_token(admin_doc, admin)
    config = Config(
        admin=admin,
        listeners=listeners,
        auth=parse_auth(_table(document, "auth", "auth")),
        mraps=mraps,
        buckets=buckets,
        store=parse_store(_table(document, "store", "store")),
        certs_dir=Path(_str(document, "certs_dir", "certs_dir")),
        key_type=cast(Literal["ecdsa", "rsa"], _choice(tls_doc, "key_type", "tls.key_type", ("ecdsa", "rsa"))),
        minted_dir=_minted_dir(tls_doc),
        log_format=cast(Literal["text", "json"], _choice(document, "log_format", "log_format", ("text", "json"))),
        workers=_workers(document),
        faults=tuple(
            _as_table(f, f"faults[{i}]") for i, f in enumerate(_array(document, "faults", "faults", required=False))
        ),
        admin_token=admin_token,
        admin_allowed_hosts=tuple(map(normalize_name, _str_list(admin_doc, "allowed_hosts", "admin.allowed_hosts"))),
        limits=parse_limits(_table(document, "limits", "limits")),
        raw=copy.deepcopy(dict(document)),
        replication=parse_replication(document.get("replication", {})),
    )
    if document.get("workers") == AUTO and config.store.kind != "sqlite":
        # Worker processes share objects only through sqlite: with the memory store, `auto` is one.
        config = replace(config, workers=1)
    if config.workers > 1 and config.store.kind != "sqlite":
        raise ConfigError(
            "workers", f'{config.workers} worker processes share objects only through store.kind = "sqlite"'
        )
    return config


def _minted_dir(tls_doc: Mapping[str, Any]) -> Path | None:
    """`tls.minted_dir`; "" (the default) means `<certs_dir>/minted`."""
    value = tls_doc.get("minted_dir", "")
    if not isinstance(value, str):
        raise ConfigError("tls.minted_dir", "must be a string (a directory; empty: <certs_dir>/minted)")
    return Path(value) if value else None


MIN_ADMIN_TOKEN = 16


def parse_admin_token(doc: Mapping[str, Any], address: Address) -> str | None:
    """The admin API's bearer token ("" or absent: none). An admin API reachable beyond loopback
    must have one: it can inject faults and read every connection."""
    token = doc.get("token", "")
    if not isinstance(token, str):
        raise ConfigError("admin.token", "must be a string")
    token = token.strip()
    if token and (len(token) < MIN_ADMIN_TOKEN or not token.isascii() or not token.isprintable() or " " in token):
        raise ConfigError(
            "admin.token", f"must be at least {MIN_ADMIN_TOKEN} printable ASCII characters without spaces"
        )
    if not token and not is_loopback_host(address.host):
        raise ConfigError(
            "admin.token",
            f"the admin API on {address} is reachable beyond loopback and needs a token "
            "([admin] token or MRAPSIM_ADMIN_TOKEN; e.g. openssl rand -hex 32)",
        )
    return token or None


LIMIT_KEYS = {
    "body_timeout",
    "body_min_rate",
    "body_rate_grace",
    "max_document",
    "max_discard",
    "connections_per_listener",
    "connections_per_peer",
    "fd_reserve",
    "minted_certificates",
}


def parse_limits(doc: Mapping[str, Any]) -> Limits:
    _reject_unknown(doc, LIMIT_KEYS, "limits")
    defaults = Limits()

    def number(key: str, minimum: int, maximum: int) -> int:
        if key not in doc:
            return cast(int, getattr(defaults, key))
        return _int(doc, key, f"limits.{key}", minimum=minimum, maximum=maximum)

    def duration(key: str) -> float:
        if key not in doc:
            return cast(float, getattr(defaults, key))
        return parse_duration(doc[key], f"limits.{key}")

    return Limits(
        body_timeout=duration("body_timeout"),
        body_min_rate=number("body_min_rate", 0, 1 << 30),
        body_rate_grace=duration("body_rate_grace"),
        max_document=number("max_document", 1024, 1 << 30),
        max_discard=number("max_discard", 0, 1 << 30),
        connections_per_listener=number("connections_per_listener", 1, 1 << 24),
        connections_per_peer=number("connections_per_peer", 1, 1 << 24),
        fd_reserve=number("fd_reserve", 16, 1 << 16),
        minted_certificates=number("minted_certificates", 1, 1 << 20),
    )


# What a listener added by a file gets for the keys it leaves out: the MRAP edge's behaviour.
LISTENER_DEFAULTS: dict[str, Any] = {
    "enabled": True,
    "sni": "required",
    "on_missing_sni": "stall",
    "on_unknown_sni": "stall",
    "alpn": ["http/1.1"],
    "stall_timeout": "300s",
    "max_stalled": 4096,
    "client_hello_timeout": "10s",
    "max_client_hello": 16384,
    "routes": [],
}

LISTENER_KEYS = {
    "enabled",
    "address",
    "sni",
    "on_missing_sni",
    "on_unknown_sni",
    "alpn",
    "stall_timeout",
    "max_stalled",
    "client_hello_timeout",
    "max_client_hello",
    "routes",
}

KNOWN_ALPN = ("h2", "http/1.1")

# Each stalled connection holds a socket; a million is more than any process's file limit.
MAX_STALLED_LIMIT = 1 << 20


def parse_listener(name: str, doc: Mapping[str, Any]) -> ListenerConfig:
    where = f"listeners.{name}"
    if not re.fullmatch(r"[a-z][a-z0-9_-]{0,31}", name):
        raise ConfigError(where, "listener names are lower-case letters, digits, '-' and '_'")
    _reject_unknown(doc, LISTENER_KEYS, where)
    if not isinstance(doc.get("enabled", True), bool):
        raise ConfigError(f"{where}.enabled", "must be true or false")
    alpn = tuple(_str_list(doc, "alpn", f"{where}.alpn"))
    for proto in alpn:
        if proto not in KNOWN_ALPN:
            raise ConfigError(f"{where}.alpn", f"{proto!r} is not served; use {' and/or '.join(KNOWN_ALPN)}")
    if not alpn:
        raise ConfigError(f"{where}.alpn", "offer at least one of h2, http/1.1")
    routes = tuple(
        parse_route(_as_table(r, f"{where}.routes[{i}]"), f"{where}.routes[{i}]")
        for i, r in enumerate(_array(doc, "routes", f"{where}.routes"))
    )
    return ListenerConfig(
        name=name,
        address=parse_address(_str(doc, "address", f"{where}.address"), f"{where}.address"),
        sni_required=_choice(doc, "sni", f"{where}.sni", ("required", "optional")) == "required",
        on_missing_sni=_action(doc, "on_missing_sni", f"{where}.on_missing_sni"),
        on_unknown_sni=_action(doc, "on_unknown_sni", f"{where}.on_unknown_sni"),
        alpn=alpn,
        stall_timeout=parse_duration(doc.get("stall_timeout"), f"{where}.stall_timeout"),
        max_stalled=_int(doc, "max_stalled", f"{where}.max_stalled", minimum=1, maximum=MAX_STALLED_LIMIT),
        client_hello_timeout=parse_duration(doc.get("client_hello_timeout"), f"{where}.client_hello_timeout"),
        max_client_hello=_int(doc, "max_client_hello", f"{where}.max_client_hello", minimum=512, maximum=1 << 20),
        routes=routes,
    )


def parse_route(doc: Mapping[str, Any], where: str) -> Route:
    _reject_unknown(doc, {"match", "target"}, where)
    match = normalize_name(_str(doc, "match", f"{where}.match"))
    labels = match.split(".")
    if not all(re.fullmatch(r"\*|[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?", label) for label in labels):
        raise ConfigError(f"{where}.match", f"{match!r} is not a DNS name pattern ('*' stands for one label)")
    target = _str(doc, "target", f"{where}.target")
    if target == BUILTIN:
        return Route(match, target, None)
    if target.startswith("tcp://"):
        return Route(match, target, parse_address(target.removeprefix("tcp://"), f"{where}.target"))
    raise ConfigError(f"{where}.target", f"{target!r} is neither 'builtin' nor 'tcp://host:port'")


def parse_auth(doc: Mapping[str, Any]) -> AuthConfig:
    _reject_unknown(doc, {"mode", "credentials", "sigv2"}, "auth")
    credentials = []
    for i, item in enumerate(_array(doc, "credentials", "auth.credentials", required=False)):
        where = f"auth.credentials[{i}]"
        table = _as_table(item, where)
        _reject_unknown(table, {"access_key", "secret_key", "sigv4a"}, where)
        sigv4a = table.get("sigv4a", True)
        if not isinstance(sigv4a, bool):
            raise ConfigError(f"{where}.sigv4a", "must be true or false")
        credentials.append(
            Credential(
                _str(table, "access_key", f"{where}.access_key"),
                _str(table, "secret_key", f"{where}.secret_key"),
                sigv4a,
            )
        )
    _reject_duplicates([c.access_key for c in credentials], "auth.credentials", "access key")
    mode = _choice(doc, "mode", "auth.mode", ("sigv4", "none"))
    if mode == "sigv4" and not credentials:
        raise ConfigError("auth.credentials", "auth mode sigv4 needs at least one key pair")
    sigv2 = doc.get("sigv2", True)
    if not isinstance(sigv2, bool):
        raise ConfigError("auth.sigv2", f"{sigv2!r} is not true or false")
    return AuthConfig(cast(Literal["sigv4", "none"], mode), tuple(credentials), sigv2)


BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def parse_bucket(doc: Mapping[str, Any], where: str) -> BucketConfig:
    _reject_unknown(doc, {"name", "objects", "synthetic", "region"}, where)
    name = _str(doc, "name", f"{where}.name")
    if not BUCKET_NAME.fullmatch(name):
        raise ConfigError(f"{where}.name", f"{name!r} is not a valid S3 bucket name")
    region = str(doc.get("region", DEFAULT_REGION))
    if not REGION_NAME.fullmatch(region):
        raise ConfigError(f"{where}.region", f"{region!r} is not an AWS Region name like 'us-west-2'")
    objects_doc = doc.get("objects", {})
    if not isinstance(objects_doc, Mapping):
        raise ConfigError(f"{where}.objects", "must be a table of key = content")
    objects = []
    for key, content in objects_doc.items():
        if not isinstance(content, str):
            raise ConfigError(f"{where}.objects.{key}", "content must be a string")
        objects.append((key, content.encode("utf-8")))
    synthetic = None
    if "synthetic" in doc:
        spec = _as_table(doc["synthetic"], f"{where}.synthetic")
        _reject_unknown(spec, {"keys", "key_format", "size", "seed"}, f"{where}.synthetic")
        keys = _int(spec, "keys", f"{where}.synthetic.keys", minimum=0, maximum=10**10)
        try:
            synthetic = SyntheticSpec(
                keys=keys,
                key_format=str(spec.get("key_format", "obj/{i:07d}")),
                size=_int(spec, "size", f"{where}.synthetic.size", minimum=0, maximum=5 * 1024**4),
                seed=_int({"seed": spec.get("seed", 0)}, "seed", f"{where}.synthetic.seed", minimum=0, maximum=2**63),
            )
        except KeyFormatError as exc:
            raise ConfigError(f"{where}.synthetic.key_format", str(exc)) from exc
    return BucketConfig(name, tuple(objects), synthetic, region)


def parse_mrap(doc: Mapping[str, Any], where: str) -> MrapConfig:
    _reject_unknown(doc, {"alias", "account", "buckets", "name", "dials", "client_region"}, where)
    alias = _str(doc, "alias", f"{where}.alias")
    if not re.fullmatch(r"[a-z0-9]{1,63}\.mrap", alias):
        raise ConfigError(f"{where}.alias", f"{alias!r} is not an MRAP alias like 'mfzwi23gnjvgw.mrap'")
    account = _str(doc, "account", f"{where}.account")
    if not re.fullmatch(r"\d{12}", account):
        raise ConfigError(f"{where}.account", "an AWS account id is 12 digits")
    buckets = tuple(_str_list(doc, "buckets", f"{where}.buckets"))
    if not buckets:
        raise ConfigError(f"{where}.buckets", "an MRAP serves at least one bucket")
    name = str(doc.get("name", alias.removesuffix(".mrap")))
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{1,48}[a-z0-9]", name):
        raise ConfigError(f"{where}.name", f"{name!r} is not an MRAP name (3–50 lower-case letters, digits, '-')")
    dials_doc = doc.get("dials", {})
    if not isinstance(dials_doc, Mapping) or set(dials_doc) - set(buckets):
        raise ConfigError(f"{where}.dials", "must be a table of member bucket = traffic dial (0–100)")
    dials = tuple(
        _int({"dial": dials_doc.get(bucket, 100)}, "dial", f"{where}.dials.{bucket}", minimum=0, maximum=100)
        for bucket in buckets
    )
    client_region = doc.get("client_region")
    if client_region is not None and not REGION_NAME.fullmatch(str(client_region)):
        raise ConfigError(f"{where}.client_region", f"{client_region!r} is not an AWS Region name")
    return MrapConfig(alias, account, buckets, name, dials, None if client_region is None else str(client_region))


def parse_replication(doc: Any) -> ReplicationConfig:
    table = _as_table(doc, "replication")
    _reject_unknown(table, {"lag", "jitter", "seed"}, "replication")
    zero = (None, "0s", "0ms", 0, "0")  # parse_duration admits only positive durations
    lag = 0.0 if table.get("lag") in zero else parse_duration(table["lag"], "replication.lag")
    jitter = 0.0 if table.get("jitter") in zero else parse_duration(table["jitter"], "replication.jitter")
    seed = _int({"seed": table.get("seed", 0)}, "seed", "replication.seed", minimum=0, maximum=2**63)
    return ReplicationConfig(lag, jitter, seed)


def parse_store(doc: Mapping[str, Any]) -> StoreConfig:
    _reject_unknown(doc, {"kind", "path"}, "store")
    kind = _choice(doc, "kind", "store.kind", ("memory", "sqlite"))
    return StoreConfig(cast(Literal["memory", "sqlite"], kind), Path(_str(doc, "path", "store.path")))


# ---------------------------------------------------------------------------------------------
# Scalars


DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)?")
DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: Any, where: str) -> float:
    """`"60s"`, `"500ms"`, `"2m"` or a number of seconds, as seconds (> 0)."""
    if isinstance(value, bool) or value is None:
        raise ConfigError(where, "a duration such as '10s' or '500ms' is needed")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        m = DURATION.fullmatch(str(value).strip())
        if not m:
            raise ConfigError(where, f"{value!r} is not a duration such as '10s' or '500ms'")
        seconds = float(m.group(1)) * DURATION_UNITS[m.group(2)]
    if not 0 < seconds <= 7 * 86400:
        raise ConfigError(where, f"{value!r} must be more than 0 and at most a week")
    return seconds


def parse_address(text: str, where: str) -> Address:
    """`HOST:PORT` or `[IPv6]:PORT`."""
    m = re.fullmatch(r"\[([0-9a-fA-F:.]+)\]:(\d+)|([^\s:\[\]]+):(\d+)", text.strip())
    if not m:
        raise ConfigError(where, f"{text!r} is not HOST:PORT")
    host = m.group(1) or m.group(3)
    port = int(m.group(2) or m.group(4))
    if not 0 <= port <= 65535:
        raise ConfigError(where, f"port {port} is out of range")
    return Address(host, port)


def _action(doc: Mapping[str, Any], key: str, where: str) -> DropAction:
    try:
        return DropAction.parse(_str(doc, key, where))
    except ValueError as exc:
        raise ConfigError(where, str(exc)) from exc


def _reject_unknown(doc: Mapping[str, Any], known: set[str], where: str) -> None:
    for key in doc:
        if key not in known:
            setting = f"{where}.{key}" if where else key
            raise ConfigError(setting, f"unknown setting; known here: {', '.join(sorted(known))}")


def _reject_duplicates(values: list[str], where: str, what: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ConfigError(where, f"{what} {value!r} is declared twice")
        seen.add(value)


def _reject_shared_addresses(listeners: tuple[ListenerConfig, ...]) -> None:
    seen: dict[tuple[str, int], str] = {}
    for listener in listeners:
        key = (listener.address.host, listener.address.port)
        if listener.address.port and key in seen:
            raise ConfigError(
                f"listeners.{listener.name}.address", f"{listener.address} is also listener {seen[key]!r}'s"
            )
        seen[key] = listener.name


def _as_table(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(where, "must be a table")
    return value


def _table(doc: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    return _as_table(doc.get(key, {}), where)


def _array(doc: Mapping[str, Any], key: str, where: str, required: bool = False) -> list[Any]:
    value = doc.get(key, [])
    if not isinstance(value, list):
        raise ConfigError(where, "must be an array")
    return value


def _str(doc: Mapping[str, Any], key: str, where: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(where, "a non-empty string is needed")
    return value


def _str_list(doc: Mapping[str, Any], key: str, where: str) -> list[str]:
    value = doc.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(where, "must be a list of non-empty strings")
    return list(value)


def _choice(doc: Mapping[str, Any], key: str, where: str, allowed: tuple[str, ...]) -> str:
    value = doc.get(key)
    if value not in allowed:
        raise ConfigError(where, f"{value!r} is not one of {', '.join(allowed)}")
    return cast(str, value)


AUTO = "auto"
MAX_WORKERS = 256


def _workers(document: Mapping[str, Any]) -> int:
    """`workers = N`, or `"auto"`: the cores this process may use (affinity and CPU quota)."""
    if document.get("workers") == AUTO:
        return min(usable_cores(), MAX_WORKERS)
    return _int(document, "workers", "workers", minimum=1, maximum=MAX_WORKERS)


def _int(doc: Mapping[str, Any], key: str, where: str, *, minimum: int, maximum: int) -> int:
    value = doc.get(key)
    if isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]{1,30}", value.strip()):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(where, f"{value!r} is not an integer; it must be between {minimum} and {maximum}")
    if not minimum <= value <= maximum:
        raise ConfigError(where, f"{value} is not allowed; it must be between {minimum} and {maximum}")
    return value


# ---------------------------------------------------------------------------------------------
# Reloading

# What a running server takes from a re-read file (SIGHUP): these, and a listener's routes;
# anything else needs a restart.
LIVE_SETTINGS = ("auth", "mraps", "faults")
LIVE_LISTENER_KEYS = ("routes",)


def changed_settings(old: Config, new: Config) -> list[str]:
    """The settings that differ, in dotted form (`auth`, `listeners.mrap`, `admin`)."""
    changed = []
    for key in sorted(set(old.raw) | set(new.raw)):
        before, after = old.raw.get(key), new.raw.get(key)
        if before == after:
            continue
        if key == "listeners" and isinstance(before, Mapping) and isinstance(after, Mapping):
            for name in sorted(set(before) | set(after)):
                changed += _listener_changes(name, before.get(name), after.get(name))
        else:
            changed.append(key)
    return changed


def _listener_changes(name: str, before: Any, after: Any) -> list[str]:
    """`listeners.NAME.routes` when only live keys changed, else `listeners.NAME`."""
    if before == after:
        return []
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        rest = [key for key in set(before) | set(after) if before.get(key) != after.get(key)]
        if all(key in LIVE_LISTENER_KEYS for key in rest):
            return [f"listeners.{name}.{key}" for key in sorted(rest)]
    return [f"listeners.{name}"]


def needs_restart(setting: str) -> bool:
    parts = setting.split(".")
    if parts[0] == "listeners":
        return len(parts) != 3 or parts[2] not in LIVE_LISTENER_KEYS
    return parts[0] not in LIVE_SETTINGS


# ---------------------------------------------------------------------------------------------
# Printing


SECRET_KEYS = ("secret_key", "token")


def redact(document: Any) -> Any:
    """A copy of `document` with every secret replaced by REDACTED."""
    if isinstance(document, Mapping):
        return {k: REDACTED if k in SECRET_KEYS and v else redact(v) for k, v in document.items()}
    if isinstance(document, list):
        return [redact(v) for v in document]
    return document


def dump_toml(config: Config, *, show_secrets: bool = False) -> str:
    document = dict(config.raw) if show_secrets else redact(config.raw)
    return tomli_w.dumps(document)
