"""What a worker gets from its supervisor. (Merging what the workers report is the admin API's:
tests/test_admin.py runs its tests against one process and against two workers.)"""

from __future__ import annotations

from mrapsim.supervisor import WorkerHandoff


def test_handoff_from_environment() -> None:
    assert WorkerHandoff.from_environment({}) is None
    handoff = WorkerHandoff.from_environment(
        {"MRAPSIM_WORKER_LISTEN_FDS": "mrap=5,s3=6", "MRAPSIM_WORKER_READY_FD": "7"}
    )
    assert handoff == WorkerHandoff({"mrap": 5, "s3": 6}, 7)
