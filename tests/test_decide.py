"""Every branch of the edge's decision, without sockets."""

from __future__ import annotations

import pytest

from mrapsim.config import default_document, merge, parse_config
from mrapsim.edge.decide import PeekTimedOut, PeerClosed, decide
from mrapsim.outcomes import DropAction, Outcome
from mrapsim.tls.clienthello import ClientHello, ClientHelloReader, Rejection
from tests.tlsbuild import build_client_hello, sslv2_client_hello, to_records

CONFIG = parse_config(
    merge(
        default_document(),
        {"listeners": {"mrap": {"on_missing_sni": "alert:missing_extension", "on_unknown_sni": "reset"}}},
    )
)
MRAP, S3 = CONFIG.listener("mrap"), CONFIG.listener("s3")


def hello(sni: str | None) -> ClientHello:
    result = ClientHelloReader().feed(to_records(build_client_hello(sni=sni)))
    assert isinstance(result, ClientHello)
    return result


def test_matching_sni_is_forwarded() -> None:
    decision = decide(MRAP, hello("mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com"))
    assert decision.outcome is Outcome.FORWARDED and decision.route == MRAP.routes[0] and decision.drop is None


@pytest.mark.parametrize("peek", [hello(None), ClientHelloReader().feed(sslv2_client_hello())])
def test_missing_sni_on_a_required_listener_is_dropped(peek: ClientHello) -> None:
    decision = decide(MRAP, peek)
    assert decision.outcome is Outcome.NO_SNI and decision.route is None
    assert decision.drop == DropAction.parse("alert:missing_extension")
    assert decision.reason


def test_unknown_sni_on_a_required_listener_is_dropped() -> None:
    decision = decide(MRAP, hello("example.com"))
    assert decision.outcome is Outcome.UNKNOWN_SNI and decision.drop == DropAction.parse("reset")
    assert "example.com" in (decision.reason or "")


@pytest.mark.parametrize("sni", [None, "example.com", "10.1.2.3"])
def test_optional_listener_serves_no_or_unknown_sni_on_its_first_route(sni: str | None) -> None:
    decision = decide(S3, hello(sni))
    assert decision.outcome is Outcome.FORWARDED and decision.route == S3.routes[0]


@pytest.mark.parametrize(
    ("peek", "outcome"),
    [
        (PeekTimedOut(10), Outcome.PEEK_TIMEOUT),
        (PeerClosed(12), Outcome.CLIENT_CLOSED),
        (Rejection(Outcome.NOT_TLS, "plain HTTP"), Outcome.NOT_TLS),
        (Rejection(Outcome.MALFORMED, "bad"), Outcome.MALFORMED),
        (Rejection(Outcome.TOO_LARGE, "big"), Outcome.TOO_LARGE),
    ],
)
def test_everything_else_is_closed(peek: object, outcome: Outcome) -> None:
    for listener in (MRAP, S3):
        decision = decide(listener, peek)  # type: ignore[arg-type]
        assert decision.outcome is outcome and str(decision.drop) == "close" and decision.reason
