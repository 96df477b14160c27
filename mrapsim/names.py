"""DNS names as the edge compares them (SPEC §3).

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


def is_san_expressible(pattern: str) -> bool:
    """Whether an X.509 SAN can carry `pattern`: a wildcard is allowed only as the whole
    leftmost label (RFC 6125 §6.4.3), and then not directly under a public suffix-like root."""
    labels = normalize_name(pattern).split(".")
    return "*" not in labels[1:] and len(labels) >= 3 if labels[0] == "*" else "*" not in labels
