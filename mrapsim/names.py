"""DNS names as the edge compares them.

Names compare case-insensitively after removing one trailing dot; `*` in a pattern stands for
exactly one label; an IP literal is never a server name (RFC 6066 §3) and so never matches.
"""

from __future__ import annotations

import ipaddress


def normalize_name(name: str) -> str:
    """Lower-case `name` and remove one trailing dot."""
    name = name.lower()
    return name[:-1] if name.endswith(".") else name


def is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


def name_matches(pattern: str, name: str) -> bool:
    """True when `name` matches `pattern`, each `*` label standing for exactly one label."""
    name = normalize_name(name)
    if not name or is_ip_literal(name):
        return False
    want = normalize_name(pattern).split(".")
    got = name.split(".")
    if len(want) != len(got):
        return False
    return all((w == "*" and g != "") or w == g for w, g in zip(want, got, strict=True))


def format_host_port(host: str, port: int) -> str:
    """`host:port`, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def split_host_port(text: str, default_port: int) -> tuple[str, int]:
    """`HOST`, `HOST:PORT`, `[IPv6]` or `[IPv6]:PORT` as (host, port)."""
    head, sep, tail = text.rpartition(":")
    if sep and tail.isdigit() and not text.endswith("]"):
        return head.strip("[]"), int(tail)
    return text.strip("[]"), default_port


def is_san_expressible(pattern: str) -> bool:
    """Whether an X.509 SAN can carry `pattern`: a wildcard is allowed only as the whole
    leftmost label (RFC 6125 §6.4.3), and then not directly under a public suffix-like root."""
    labels = normalize_name(pattern).split(".")
    return "*" not in labels[1:] and len(labels) >= 3 if labels[0] == "*" else "*" not in labels
