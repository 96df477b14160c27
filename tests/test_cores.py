"""`--workers auto`: the cores the process may use, from affinity and the cgroup CPU quota."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mrapsim.config import ConfigError, load_config
from mrapsim.cores import cpu_quota, usable_cores


def cgroup_v2(tmp_path: Path, quotas: dict[str, str]) -> tuple[Path, Path]:
    """A fake unified hierarchy: `quotas` maps a cgroup path to its cpu.max; the process is in
    the deepest one."""
    root = tmp_path / "cgroup"
    for path, value in quotas.items():
        directory = root / path.lstrip("/")
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "cpu.max").write_text(value + "\n")
    proc = tmp_path / "proc-cgroup"
    proc.write_text(f"0::{max(quotas, key=len)}\n")
    return root, proc


def test_no_quota_is_the_affinity(tmp_path: Path) -> None:
    root, proc = cgroup_v2(tmp_path, {"/": "max 100000", "/pod": "max 100000"})
    assert cpu_quota(root, proc) is None
    assert usable_cores(root, proc) == len(os.sched_getaffinity(0))


def test_a_quota_rounds_up_and_the_tightest_ancestor_wins(tmp_path: Path) -> None:
    root, proc = cgroup_v2(tmp_path, {"/": "max 100000", "/kubepods": "150000 100000", "/kubepods/pod": "max 100000"})
    assert cpu_quota(root, proc) == 1.5
    assert usable_cores(root, proc) == min(2, len(os.sched_getaffinity(0)))


def test_a_small_quota_is_one_worker(tmp_path: Path) -> None:
    root, proc = cgroup_v2(tmp_path, {"/": "max 100000", "/c": "20000 100000"})
    assert usable_cores(root, proc) == 1


def test_cgroup_v1_quota(tmp_path: Path) -> None:
    cpu = tmp_path / "cgroup" / "cpu" / "docker"
    cpu.mkdir(parents=True)
    (cpu / "cpu.cfs_quota_us").write_text("300000\n")
    (cpu / "cpu.cfs_period_us").write_text("100000\n")
    proc = tmp_path / "proc-cgroup"
    proc.write_text("4:memory:/docker\n1:cpu,cpuacct:/docker\n")
    assert cpu_quota(tmp_path / "cgroup", proc) == 3.0


def test_unreadable_cgroup_files_are_no_quota(tmp_path: Path) -> None:
    assert cpu_quota(tmp_path / "none", tmp_path / "missing") is None


def test_auto_with_sqlite_is_the_usable_cores(tmp_path: Path) -> None:
    config = load_config(overrides={"workers": "auto", "store": {"kind": "sqlite", "path": str(tmp_path)}})
    assert config.workers == usable_cores()


def test_auto_with_the_memory_store_is_one_worker() -> None:
    assert load_config(overrides={"workers": "auto"}).workers == 1


def test_other_words_are_rejected() -> None:
    with pytest.raises(ConfigError, match="workers"):
        load_config(overrides={"workers": "many"})
