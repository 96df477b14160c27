"""Configuration: defaults, layering, validation errors that name the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from mrapsim.config import (
    ConfigError,
    default_document,
    dump_toml,
    listen_override,
    load_config,
    merge,
    parse_address,
    parse_config,
    parse_duration,
)
from mrapsim.outcomes import DropAction, DropKind


def test_defaults_match_the_spec() -> None:
    config = load_config()
    mrap, s3 = config.listener("mrap"), config.listener("s3")
    assert str(mrap.address) == "0.0.0.0:8443" and str(s3.address) == "0.0.0.0:8444"
    assert mrap.sni_required and not s3.sni_required
    assert mrap.on_missing_sni == DropAction(DropKind.STALL) == mrap.on_unknown_sni
    # AWS S3 selects http/1.1 when offered h2 (see the comment on DEFAULT_TOML): both listeners.
    assert mrap.alpn == ("http/1.1",) and s3.alpn == ("http/1.1",)
    # Longer than every common proxy's connect timeout (nginx 60 s): the proxy's timer fires first.
    assert mrap.stall_timeout == 300 and s3.stall_timeout == 300
    assert mrap.max_stalled == 4096 and s3.max_stalled == 4096
    assert mrap.client_hello_timeout == 10 and mrap.max_client_hello == 16384
    assert [r.match for r in mrap.routes] == ["*.mrap.accesspoint.s3-global.amazonaws.com"]
    assert [r.match for r in s3.routes] == [
        "s3.amazonaws.com",
        "*.s3.amazonaws.com",
        "s3.*.amazonaws.com",
        "*.s3.*.amazonaws.com",
        "localhost",
        "*.localhost",
    ]
    assert str(config.admin) == "127.0.0.1:9911"  # not 9901, Envoy's admin default
    assert config.auth.mode == "sigv4"
    assert config.auth.secret_for("AKIAIOSFODNN7EXAMPLE") == "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    assert config.mraps[0].alias == "mfzwi23gnjvgw.mrap" and config.mraps[0].buckets == ("mraps3sample",)
    assert config.buckets[0].name == "mraps3sample" and config.buckets[0].objects
    assert config.store.kind == "memory"


def test_file_layers_over_defaults(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[listeners.mrap]\non_missing_sni = "alert:unrecognized_name"\nstall_timeout = "500ms"\n'
        '[[buckets]]\nname = "extra"\n'
    )
    config = load_config(path)
    mrap = config.listener("mrap")
    assert str(mrap.on_missing_sni) == "alert:unrecognized_name"
    assert mrap.stall_timeout == 0.5
    assert mrap.routes  # untouched keys keep their defaults
    assert [b.name for b in config.buckets] == ["mraps3sample", "extra"]


def test_routes_replace_wholesale() -> None:
    doc = merge(
        default_document(), {"listeners": {"mrap": {"routes": [{"match": "a.example", "target": "tcp://127.0.0.1:1"}]}}}
    )
    route = parse_config(doc).listener("mrap").routes
    assert len(route) == 1 and route[0].upstream is not None and route[0].upstream.port == 1


@pytest.mark.parametrize(
    ("overlay", "setting"),
    [
        ({"listeners": {"mrap": {"stall_timeout": "soon"}}}, "listeners.mrap.stall_timeout"),
        ({"listeners": {"mrap": {"on_missing_sni": "explode"}}}, "listeners.mrap.on_missing_sni"),
        ({"listeners": {"mrap": {"sni": "maybe"}}}, "listeners.mrap.sni"),
        ({"listeners": {"mrap": {"alpn": ["h3"]}}}, "listeners.mrap.alpn"),
        ({"listeners": {"mrap": {"max_client_hello": 10}}}, "listeners.mrap.max_client_hello"),
        ({"listeners": {"mrap": {"max_stalled": 0}}}, "listeners.mrap.max_stalled"),
        ({"listeners": {"s3": {"max_stalled": "many"}}}, "listeners.s3.max_stalled"),
        ({"listeners": {"mrap": {"max_stalled": 1.5}}}, "listeners.mrap.max_stalled"),
        ({"listeners": {"mrap": {"max_stalled": 1 << 21}}}, "listeners.mrap.max_stalled"),
        ({"listeners": {"mrap": {"address": "nowhere"}}}, "listeners.mrap.address"),
        ({"listeners": {"mrap": {"typo": 1}}}, "listeners.mrap.typo"),
        (
            {"listeners": {"mrap": {"routes": [{"match": "a..b", "target": "builtin"}]}}},
            "listeners.mrap.routes[0].match",
        ),
        (
            {"listeners": {"mrap": {"routes": [{"match": "a.b", "target": "udp://x:1"}]}}},
            "listeners.mrap.routes[0].target",
        ),
        ({"listeners": {"s3": {"address": "0.0.0.0:8443"}}}, "listeners.s3.address"),
        ({"auth": {"mode": "basic"}}, "auth.mode"),
        ({"mraps": [{"alias": "nope", "account": "1", "buckets": ["x"]}]}, "mraps[1].alias"),
        ({"buckets": [{"name": "Bad_Name"}]}, "buckets[1].name"),
        ({"buckets": [{"name": "west", "region": "Mars"}]}, "buckets[1].region"),
        ({"workers": 0}, "workers"),
        ({"log_format": "xml"}, "log_format"),
        ({"stray": True}, "stray"),
    ],
)
def test_bad_values_name_the_setting(overlay: dict[str, object], setting: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(merge(default_document(), overlay))
    assert caught.value.setting == setting
    assert str(caught.value).startswith(f"{setting}: ")


@pytest.mark.parametrize(("text", "seconds"), [("60s", 60), ("500ms", 0.5), ("2m", 120), (3, 3), ("1.5s", 1.5)])
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text, "x") == seconds


@pytest.mark.parametrize("text", ["0s", "-1s", "soon", "", True])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ConfigError):
        parse_duration(text, "x")


def test_addresses() -> None:
    assert str(parse_address("[::1]:80", "x")) == "[::1]:80"
    assert parse_address("127.0.0.1:0", "x").port == 0
    with pytest.raises(ConfigError):
        parse_address("host:99999", "x")
    assert listen_override("mrap=127.0.0.1:1") == {"listeners": {"mrap": {"address": "127.0.0.1:1"}}}
    with pytest.raises(ConfigError):
        listen_override("127.0.0.1:1")


def test_printed_config_redacts_secrets_and_round_trips(tmp_path: Path) -> None:
    config = load_config()
    text = dump_toml(config)
    assert "wJalrXUtnFEMI" not in text and "<redacted>" in text
    full = tmp_path / "full.toml"
    full.write_text(dump_toml(config, show_secrets=True))
    assert load_config(full) == config


@pytest.mark.parametrize(
    "text", ["stall", "reset", "close", "alert:unrecognized_name", "alert:missing_extension", "alert:handshake_failure"]
)
def test_drop_actions_round_trip(text: str) -> None:
    assert str(DropAction.parse(text)) == text


@pytest.mark.parametrize("text", ["alert", "alert:", "alert:nope", "stall:1", "drop"])
def test_bad_drop_actions(text: str) -> None:
    with pytest.raises(ValueError):
        DropAction.parse(text)


def test_a_new_listener_gets_the_edge_defaults() -> None:
    doc = merge(default_document(), {"listeners": {"edge2": {"address": "127.0.0.1:0"}}})
    listener = parse_config(doc).listener("edge2")
    assert listener.sni_required and listener.alpn == ("http/1.1",) and listener.stall_timeout == 300
    assert listener.max_stalled == 4096
    assert listener.routes == ()


def test_h2_stays_a_configuration_choice_and_max_stalled_is_set_per_listener(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[listeners.mrap]\nalpn = ["h2", "http/1.1"]\nmax_stalled = 8\n')
    config = load_config(path)
    assert config.listener("mrap").alpn == ("h2", "http/1.1") and config.listener("mrap").max_stalled == 8
    assert config.listener("s3").max_stalled == 4096


def test_a_listener_can_be_disabled() -> None:
    config = parse_config(merge(default_document(), {"listeners": {"s3": {"enabled": False}}}))
    assert [listener.name for listener in config.listeners] == ["mrap"]
    with pytest.raises(ConfigError) as caught:
        parse_config(merge(default_document(), {"listeners": {"s3": {"enabled": "no"}}}))
    assert caught.value.setting == "listeners.s3.enabled"
    with pytest.raises(ConfigError):
        parse_config(merge(default_document(), {"listeners": {"s3": {"enabled": False}, "mrap": {"enabled": False}}}))


def test_minted_dir(tmp_path: Path) -> None:
    assert load_config().minted_dir is None
    config = parse_config(merge(default_document(), {"tls": {"minted_dir": str(tmp_path / "m")}}))
    assert config.minted_dir == tmp_path / "m"


def test_synthetic_key_format_must_keep_key_order() -> None:
    bad = {"buckets": [{"name": "syn", "synthetic": {"keys": 1000, "key_format": "obj/{i}", "size": 1}}]}
    with pytest.raises(ConfigError) as caught:
        parse_config(merge(default_document(), bad))
    assert caught.value.setting == "buckets[1].synthetic.key_format"
    good = {"buckets": [{"name": "syn", "synthetic": {"keys": 1000, "key_format": "obj/{i:04d}", "size": 1}}]}
    assert parse_config(merge(default_document(), good)).buckets[1].synthetic is not None
