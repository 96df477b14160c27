"""The fatal TLS alerts the edge may send instead of a ServerHello.

A drop action writes one plaintext alert record and closes; RFC 8446 §6 defines the layout
(content type 21, legacy version 0x0303, length 2, level 2 = fatal, description).
"""

from __future__ import annotations

from dataclasses import dataclass

ALERT_CODES: dict[str, int] = {
    "unrecognized_name": 112,  # RFC 6066 §3: unknown server name
    "missing_extension": 109,  # RFC 8446 §9.2: a required extension (server_name) is absent
    "handshake_failure": 40,  # what sniproxy and many CDNs send
}

ALERT_NAMES: dict[int, str] = {
    0: "close_notify",
    10: "unexpected_message",
    20: "bad_record_mac",
    22: "record_overflow",
    40: "handshake_failure",
    42: "bad_certificate",
    43: "unsupported_certificate",
    44: "certificate_revoked",
    45: "certificate_expired",
    46: "certificate_unknown",
    47: "illegal_parameter",
    48: "unknown_ca",
    49: "access_denied",
    50: "decode_error",
    51: "decrypt_error",
    70: "protocol_version",
    71: "insufficient_security",
    80: "internal_error",
    86: "inappropriate_fallback",
    90: "user_canceled",
    109: "missing_extension",
    110: "unsupported_extension",
    112: "unrecognized_name",
    113: "bad_certificate_status_response",
    115: "unknown_psk_identity",
    116: "certificate_required",
    120: "no_application_protocol",
}


@dataclass(frozen=True)
class Alert:
    level: int  # 1 warning, 2 fatal
    code: int

    @property
    def name(self) -> str:
        return ALERT_NAMES.get(self.code, f"alert_{self.code}")


def read_alert_record(data: bytes | bytearray) -> Alert | None:
    """The plaintext alert record at the start of what a server sent, if that is what it is."""
    if len(data) >= 7 and data[0] == 21 and data[1] == 3 and data[3:5] == b"\x00\x02":
        return Alert(data[5], data[6])
    return None


def fatal_alert_record(name: str) -> bytes:
    """The 7 bytes of a plaintext fatal alert record for `name` (a key of ALERT_CODES)."""
    return bytes((21, 3, 3, 0, 2, 2, ALERT_CODES[name]))
