"""Scenarios: built-ins, TOML files, and errors that name what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from mrapsim.load.scenario import (
    BUILTIN_SCENARIOS,
    ConnectionMode,
    TaskKind,
    load_scenario,
    parse_scenario,
    parse_size,
)


def test_mixed_has_one_in_ten_handshakes_without_sni() -> None:
    mixed = BUILTIN_SCENARIOS["mixed"]
    handshakes = [t for t in mixed.tasks if t.kind is TaskKind.HANDSHAKE]
    without = sum(t.weight for t in handshakes if t.sni is False)
    assert without / sum(t.weight for t in handshakes) == pytest.approx(0.1)
    assert {t.kind for t in mixed.tasks} == set(TaskKind) - {TaskKind.HEAD}


def test_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "mix.toml"
    path.write_text("""
name = "mine"
[[task]]
kind = "get"
weight = 3
sizes = ["1KiB", 2048, "1MiB"]
ranges = ["bytes=0-99", "-10"]
sni = "other.example"
connection = "new"
[[task]]
kind = "list"
prefix = "logs/"
max_keys = 10
[[task]]
kind = "handshake"
name = "bare"
sni = false
""")
    scenario = load_scenario(str(path))
    get, listing, bare = scenario.tasks
    assert scenario.name == "mine"
    assert get.sizes == (1024, 2048, 1 << 20) and get.ranges == ("0-99", "-10")
    assert get.sni == "other.example" and get.connection is ConnectionMode.NEW
    assert listing.prefix == "logs/" and listing.max_keys == 10 and listing.connection is ConnectionMode.KEEP_ALIVE
    assert bare.sni is False and bare.connection is ConnectionMode.NEW
    assert scenario.seeded_sizes == (1024, 2048, 1 << 20)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"task": [{"kind": "delete"}]}, "task kind"),
        ({"task": [{"kind": "get", "colour": 1}]}, "unknown task keys: colour"),
        ({"task": [{"kind": "get", "http": "3"}]}, '"1.1" or "2"'),
        ({"task": [{"kind": "get", "weight": 0}]}, "weight above 0"),
        ({"task": [{"kind": "get"}, {"kind": "get"}]}, "unique"),
        ({"task": [{"kind": "get", "ranges": ["a-b"]}]}, "range"),
        ({"tasks": []}, "[[task]]"),
        ({"task": [{"kind": "get", "connection": "pooled"}]}, "keep-alive or new"),
    ],
)
def test_bad_scenarios_are_named(document: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=None) as caught:
        parse_scenario(document)
    assert message in str(caught.value)


def test_unknown_name_lists_builtins() -> None:
    with pytest.raises(ValueError, match="mixed"):
        load_scenario("no-such-scenario")


def test_sizes() -> None:
    assert parse_size("64KiB") == 65536 and parse_size("1MB") == 10**6 and parse_size(7) == 7
    with pytest.raises(ValueError):
        parse_size("lots")


def test_shipped_scenario_files_parse() -> None:
    directory = Path(__file__).resolve().parents[2] / "loadtest" / "scenarios"
    files = sorted(directory.glob("*.toml"))
    assert files
    for path in files:
        load_scenario(str(path))
    assert load_scenario(str(directory / "mixed.toml")).tasks == BUILTIN_SCENARIOS["mixed"].tasks
