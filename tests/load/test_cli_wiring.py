"""`add_load_parser` under mrapsim's own parser class (whose errors raise), as cli.py wires it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mrapsim.cli import OneLineParser, UsageError
from mrapsim.config import parse_duration
from mrapsim.load.cli import add_load_parser, build_options
from mrapsim.load.shapes import parse_stages
from mrapsim.tls.certs import ensure_certificates


@pytest.fixture(autouse=True)
def no_aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_DEFAULT_REGION", "MRAPSIM_CERTS_DIR"):
        monkeypatch.delenv(name, raising=False)
    for name in [n for n in os.environ if n.startswith("MRAPSIM_LOAD_")]:
        monkeypatch.delenv(name)


def parser() -> OneLineParser:
    top = OneLineParser(prog="mrapsim")
    commands = top.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    add_load_parser(commands)
    return top


def test_run_and_merge_parse() -> None:
    args = parser().parse_args(
        [
            "load",
            "--target",
            "https://localhost:8444/b",
            "--users",
            "3",
            "--duration",
            "2m",
            "--threshold",
            "p99<5ms",
            "--threshold",
            "rps>1",
        ]
    )
    assert args.command == "load" and args.load_command is None and args.threshold == ["p99<5ms", "rps>1"]
    options = build_options(args)
    assert options.users == 3 and options.duration == 120 and options.endpoint.base_path == "/b"
    merged = parser().parse_args(["load", "merge", "a.json", "b.json", "--csv", "out/m", "--threshold", "p50<1s"])
    assert merged.load_command == "merge" and merged.files == ["a.json", "b.json"]
    assert merged.csv == "out/m" and merged.threshold == ["p50<1s"]


@pytest.mark.parametrize(
    "argv", [["load", "--users", "many"], ["load", "--duration", "1s", "--requests", "5"], ["load", "merge"]]
)
def test_usage_errors_raise(argv: list[str]) -> None:
    with pytest.raises(UsageError):
        parser().parse_args(argv)


def test_options_are_checked() -> None:
    for argv, message in (
        (["load"], "--target"),
        (["load", "--target", "https://x", "--access-key", "A"], "go together"),
        (["load", "--target", "https://x", "--ca-bundle", "/no/such.pem"], "--ca-bundle"),
        (["load", "--target", "https://x", "--users", "1", "--processes", "2"], "--users"),
        (["load", "--target", "https://x", "--duration", "soon"], "duration"),
    ):
        args = parser().parse_args(argv)
        with pytest.raises(ValueError, match=None) as caught:
            build_options(args)
        assert message in str(caught.value), argv


def test_durations() -> None:
    assert parse_duration("30s", "--duration") == 30 and parse_duration("500ms", "--duration") == 0.5
    assert parse_duration("1.5", "--duration") == 1.5
    assert parse_duration("2h", "--duration") == 7200


def test_locust_short_flags() -> None:
    args = parser().parse_args(
        [
            "load",
            "-u",
            "5",
            "-r",
            "5",
            "-t",
            "10s",
            "--headless",
            "-H",
            "https://localhost:8444/mraps3sample",
            "--only-summary",
            "--csv-full-history",
        ]
    )
    options = build_options(args)
    assert (options.users, options.spawn_rate, options.duration) == (5, 5.0, 10.0)
    assert options.endpoint.base_path == "/mraps3sample" and args.only_summary and args.csv_full_history
    assert build_options(parser().parse_args(["load", "--host", "https://x", "--run-time", "1m"])).duration == 60


def test_environment_and_config_file_like_locust(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "load.conf"
    conf.write_text(
        "# Locust's format\nhost = https://localhost:8444/mraps3sample\nusers = 7\n"
        "run-time = 2m\nthreshold = p(95)<500\nthreshold = rate<0.01\nheadless = true\n"
    )
    args = parser().parse_args(["load", "--config", str(conf)])
    options = build_options(args)
    assert options.users == 7 and options.duration == 120 and args.threshold == ["p(95)<500", "rate<0.01"]
    assert args.settings_sources["users"] == str(conf)
    monkeypatch.setenv("MRAPSIM_LOAD_USERS", "3")  # the environment beats the file
    monkeypatch.setenv("MRAPSIM_LOAD_SPAWN_RATE", "1.5")
    args = parser().parse_args(["load", "--config", str(conf)])
    options = build_options(args)
    assert options.users == 3 and options.spawn_rate == 1.5
    options = build_options(parser().parse_args(["load", "--config", str(conf), "-u", "9"]))  # the flag beats both
    assert options.users == 9
    toml = tmp_path / "pyproject.toml"
    toml.write_text('[tool.mrapsim-load]\nhost = "https://h.s3.amazonaws.com"\nstages = ["5s:10", "5s:0"]\n')
    monkeypatch.delenv("MRAPSIM_LOAD_USERS")
    options = build_options(parser().parse_args(["load", "--config", str(toml)]))
    assert options.stages is not None and options.stages.peak == 10 and options.users == 10
    monkeypatch.setenv("MRAPSIM_LOAD_NO_SUCH", "1")
    with pytest.raises(ValueError, match="MRAPSIM_LOAD_NO_SUCH"):
        build_options(parser().parse_args(["load", "--host", "https://x"]))


def test_credentials_from_the_environment_then_mrapsims_pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ensure_certificates(tmp_path / "certs", ["localhost"])
    monkeypatch.chdir(tmp_path)  # ./certs/ca.pem: the default --certs-dir
    options = build_options(parser().parse_args(["load", "-H", "https://localhost:8444/mraps3sample"]))
    assert options.ca_bundle == str(Path("certs") / "ca.pem") and options.system_ca
    assert options.credentials is not None and options.credentials.access_key == "AKIAIOSFODNN7EXAMPLE"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDMINE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    options = build_options(parser().parse_args(["load", "-H", "https://localhost:8444/mraps3sample"]))
    assert options.credentials is not None and options.credentials.access_key == "AKIDMINE"
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    options = build_options(
        parser().parse_args(["load", "-H", "https://bucket.s3.amazonaws.com", "--certs-dir", str(tmp_path / "none")])
    )
    assert options.credentials is None  # not a mrapsim: unsigned, as before


def test_stages_parse() -> None:
    stages = parse_stages(["10s:20,10s:20", "10s:0"])
    assert stages is not None and stages.kind == "users" and stages.total == 30 and stages.peak == 20
    assert stages.target_at(5) == 10 and stages.target_at(15) == 20 and stages.target_at(25) == 10
    assert stages.target_at(30) is None
    rate = parse_stages(["2s:10/s,2s:10/s"])
    assert rate is not None and rate.kind == "rate"
    times = rate.arrival_times()
    assert len(times) == 30 and times == sorted(times) and times[-1] <= 4  # 10 while ramping, 20 held
    for bad in (["10s"], ["10s:x"], ["1s:5,1s:5/s"], ["1s:0"]):
        with pytest.raises(ValueError):
            parse_stages(bad)
