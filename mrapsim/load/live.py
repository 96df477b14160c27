"""The live view during a run (`mrapsim load --web HOST:PORT`): not built yet."""

from __future__ import annotations

from typing import Any

from mrapsim.load.stats import RunStats


class LiveServer:
    url = ""

    @classmethod
    def start(cls, address: str, run: dict[str, Any]) -> LiveServer:
        raise ValueError("the live view is not available in this version")

    def publish(self, stats: RunStats) -> None:
        pass

    def stop(self) -> None:
        pass
