"""`add_load_parser` under mrapsim's own parser class (whose errors raise), as cli.py wires it."""

from __future__ import annotations

import pytest

from mrapsim.cli import OneLineParser, UsageError
from mrapsim.config import parse_duration
from mrapsim.load.cli import add_load_parser, build_options


@pytest.fixture(autouse=True)
def no_aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)


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
