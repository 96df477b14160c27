from __future__ import annotations

import pytest

from mrapsim.names import format_host_port, is_san_expressible, name_matches, split_host_port


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("*.mrap.accesspoint.s3-global.amazonaws.com", "mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com", True),
        ("*.mrap.accesspoint.s3-global.amazonaws.com", "MFZWI23GNJVGW.MRAP.accesspoint.s3-global.amazonaws.com.", True),
        ("*.mrap.accesspoint.s3-global.amazonaws.com", "a.b.mrap.accesspoint.s3-global.amazonaws.com", False),
        ("*.mrap.accesspoint.s3-global.amazonaws.com", "mrap.accesspoint.s3-global.amazonaws.com", False),
        ("s3.*.amazonaws.com", "s3.us-east-1.amazonaws.com", True),
        ("s3.*.amazonaws.com", "s3.amazonaws.com", False),
        ("*.s3.*.amazonaws.com", "bucket.s3.eu-west-1.amazonaws.com", True),
        ("localhost", "LOCALHOST.", True),
        ("localhost", "localhost..", False),
        ("*.localhost", "127.0.0.1", False),
        ("*.*.*.*", "127.0.0.1", False),
        ("*.*.*.*", "10.0.0.1.", False),
        ("*", "::1", False),
        ("*.example", ".example", False),
    ],
)
def test_name_matches(pattern: str, name: str, matches: bool) -> None:
    assert name_matches(pattern, name) is matches


@pytest.mark.parametrize(
    ("pattern", "expressible"),
    [
        ("*.mrap.accesspoint.s3-global.amazonaws.com", True),
        ("s3.amazonaws.com", True),
        ("s3.*.amazonaws.com", False),
        ("*.s3.*.amazonaws.com", False),
        ("*.localhost", False),
        ("localhost", True),
    ],
)
def test_san_expressible(pattern: str, expressible: bool) -> None:
    assert is_san_expressible(pattern) is expressible


@pytest.mark.parametrize(
    ("text", "expected"),
    [("h", ("h", 443)), ("h:8443", ("h", 8443)), ("[::1]", ("::1", 443)), ("[::1]:9", ("::1", 9))],
)
def test_split_host_port(text: str, expected: tuple[str, int]) -> None:
    assert split_host_port(text, 443) == expected


def test_format_host_port() -> None:
    assert format_host_port("127.0.0.1", 1) == "127.0.0.1:1" and format_host_port("::1", 2) == "[::1]:2"
