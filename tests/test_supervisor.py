"""The supervisor's merging of what its workers report."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from mrapsim.supervisor import WorkerHandoff, merge_connections, merge_metrics


def worker_metrics(connections: int, active: int) -> str:
    registry = CollectorRegistry()
    Counter("mrapsim_connections", "c", ["listener"], registry=registry).labels("s3").inc(connections)
    Gauge("mrapsim_connections_active", "a", ["listener"], registry=registry).labels("s3").set(active)
    Gauge("mrapsim_build_info", "b", ["version"], registry=registry).labels("0.1.0").set(1)
    return generate_latest(registry).decode()


def test_metrics_are_summed_across_workers() -> None:
    merged = merge_metrics([worker_metrics(3, 1), worker_metrics(4, 2)])
    samples = {
        (s.name, tuple(s.labels.items())): s.value for f in text_string_to_metric_families(merged) for s in f.samples
    }
    assert samples[("mrapsim_connections_total", (("listener", "s3"),))] == 7
    assert samples[("mrapsim_connections_active", (("listener", "s3"),))] == 3
    assert samples[("mrapsim_build_info", (("version", "0.1.0"),))] == 1


def test_connections_are_merged_newest_first() -> None:
    a = [{"id": "a2", "start": "2026-11-26T10:00:02.000Z"}, {"id": "a1", "start": "2026-11-26T10:00:00.000Z"}]
    b = [{"id": "b1", "start": "2026-11-26T10:00:01.000Z"}]
    assert [r["id"] for r in merge_connections([a, b], limit=2)] == ["a2", "b1"]


def test_handoff_from_environment() -> None:
    assert WorkerHandoff.from_environment({}) is None
    handoff = WorkerHandoff.from_environment(
        {"MRAPSIM_WORKER_LISTEN_FDS": "mrap=5,s3=6", "MRAPSIM_WORKER_READY_FD": "7"}
    )
    assert handoff == WorkerHandoff({"mrap": 5, "s3": 6}, 7)
