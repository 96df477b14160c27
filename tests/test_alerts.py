from __future__ import annotations

import pytest

from mrapsim.tls.alerts import ALERT_CODES, Alert, fatal_alert_record, read_alert_record


@pytest.mark.parametrize("name", sorted(ALERT_CODES))
def test_the_alert_the_edge_writes_is_the_alert_clients_read(name: str) -> None:
    assert read_alert_record(fatal_alert_record(name)) == Alert(2, ALERT_CODES[name])
    assert Alert(2, ALERT_CODES[name]).name == name


@pytest.mark.parametrize(
    "data", [b"", b"\x16\x03\x03\x00\x02\x02\x70", b"\x15\x03\x03\x00\x03\x02\x70\x00", b"\x15\x03"]
)
def test_other_bytes_are_not_an_alert(data: bytes) -> None:
    assert read_alert_record(data) is None
