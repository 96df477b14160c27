"""The sans-IO multipart/form-data reader (s3/formdata.py): whatever the chunking, the same
fields and the same file bytes come out; malformed forms are FormError, never another exception."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mrapsim.s3.formdata import Field, FileData, FileStart, FormEnd, FormError, FormReader, boundary_of

BOUNDARY = "----mrapsimBoundary7MA4YWxkTrZu0gW"


def form(fields: list[tuple[str, str]], data: bytes) -> bytes:
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields
    ]
    parts.append(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="f.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + data
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    return b"".join(parts)


def read(body: bytes, cuts: list[int]) -> list[object]:
    reader = FormReader(BOUNDARY, max_field=10_000)
    events: list[object] = []
    start = 0
    for cut in [*sorted({c % (len(body) + 1) for c in cuts}), len(body)]:
        events += reader.feed(body[start:cut])
        start = cut
    reader.close()
    return events


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-_", min_size=1, max_size=12).filter(lambda n: n != "file")
values = st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n"), max_size=40)


@given(
    fields=st.lists(st.tuples(names, values), max_size=6),
    data=st.binary(max_size=3000),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=20),
)
def test_any_chunking_reads_the_same_form(fields: list[tuple[str, str]], data: bytes, cuts: list[int]) -> None:
    events = read(form(fields, data), cuts)
    assert [e for e in events if isinstance(e, Field)] == [Field(n, v) for n, v in fields]
    assert [e for e in events if isinstance(e, FileStart)] == [FileStart("file", "f.bin", "application/octet-stream")]
    assert b"".join(e.data for e in events if isinstance(e, FileData)) == data
    assert isinstance(events[-1], FormEnd)


@given(body=st.binary(max_size=500), cuts=st.lists(st.integers(min_value=0, max_value=500), max_size=5))
def test_garbage_is_a_form_error_or_nothing(body: bytes, cuts: list[int]) -> None:
    try:
        read(body, cuts)
    except FormError:
        pass


def test_bounds_and_content_types() -> None:
    with pytest.raises(FormError):
        read(form([("big", "x" * 20_000)], b""), [])
    assert boundary_of(f"multipart/form-data; boundary={BOUNDARY}") == BOUNDARY
    assert boundary_of('multipart/form-data; boundary="a b"') == "a b"
    assert boundary_of("application/x-www-form-urlencoded") is None and boundary_of(None) is None
