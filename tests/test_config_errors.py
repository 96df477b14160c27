"""Configuration errors are one line and exit 2, always (issue 16, item 10), and the file
behaves as the README says: a bucket's objects merge key by key, `mrapsim config` prints every key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from mrapsim.config import ConfigError, load_config
from tests.test_cli import assert_one_line_error, mrapsim


def test_a_file_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes('log_format = "text"\n# caf\xe9\n'.encode("latin-1"))
    assert_one_line_error(mrapsim("serve", "--config", str(latin1)), "--config", "not UTF-8")
    utf16 = tmp_path / "utf16.toml"
    utf16.write_bytes('log_format = "text"\n'.encode("utf-16"))
    assert_one_line_error(mrapsim("config", "--config", str(utf16)), "--config", "not UTF-8")


def test_duplicate_access_keys_are_one_line(tmp_path: Path) -> None:
    result = mrapsim("config", env={"MRAPSIM_CREDENTIALS": "AKIAONE:secret-one,AKIAONE:secret-two"})
    assert_one_line_error(result, "MRAPSIM_CREDENTIALS", "AKIAONE", "twice")
    file = tmp_path / "dup.toml"
    pair = '[[auth.credentials]]\naccess_key = "A"\nsecret_key = "{}"\n'
    file.write_text(pair.format("x") + pair.format("y"))
    assert_one_line_error(mrapsim("config", "--config", str(file)), "auth.credentials", "twice")


@pytest.mark.parametrize("workers", ["-1", "0", "257", "9" * 5000, "two"])
def test_workers_out_of_range_says_the_range(workers: str) -> None:
    assert_one_line_error(mrapsim("serve", "--workers", workers), "workers", "must be between 1 and 256")


def test_a_bucket_in_a_file_merges_its_objects_key_by_key() -> None:
    config = load_config(
        overrides={"buckets": [{"name": "mraps3sample", "objects": {"extra.txt": "more", "hello.txt": "changed"}}]}
    )
    [bucket] = [b for b in config.buckets if b.name == "mraps3sample"]
    objects = dict(bucket.objects)
    assert objects["extra.txt"] == b"more" and objects["hello.txt"] == b"changed"
    assert "data/one.csv" in objects and "README.md" in objects  # the defaults stay


def test_mrapsim_config_prints_every_key(tmp_path: Path) -> None:
    file = tmp_path / "added.toml"
    file.write_text('[listeners.edge2]\naddress = "127.0.0.1:0"\n')
    printed = mrapsim("config", "--config", str(file), "--show-secrets")
    assert printed.returncode == 0, printed.stderr
    document = tomllib.loads(printed.stdout)
    assert document["tls"]["minted_dir"] == ""
    for name in ("mrap", "s3", "edge2"):
        assert document["listeners"][name]["enabled"] is True
        assert document["listeners"][name]["stall_timeout"]
    assert document["admin"]["token"] == "" and document["admin"]["allowed_hosts"] == []
    assert set(document["limits"]) >= {"body_timeout", "body_min_rate", "max_document", "connections_per_peer"}
    # What it printed reads back to the same configuration.
    again = tmp_path / "again.toml"
    again.write_text(printed.stdout)
    assert load_config(again) == load_config(file)


def test_limits_are_validated() -> None:
    with pytest.raises(ConfigError, match=r"limits\.body_timeout"):
        load_config(overrides={"limits": {"body_timeout": "forever"}})
    with pytest.raises(ConfigError, match=r"limits\.colour"):
        load_config(overrides={"limits": {"colour": 1}})
    assert load_config(overrides={"limits": {"body_min_rate": 0}}).limits.body_min_rate == 0
