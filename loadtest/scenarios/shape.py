"""A Locust-style shape class: `tick()` returns (users, spawn rate) once a second, or None to
stop. Here: 5 users for 5 s, 15 for 5 s, then 5 again for 5 s.

    mrapsim load -H https://localhost:8444/mraps3sample -f loadtest/scenarios/shape.py --html out/shape.html
"""

from mrapsim.load.shapes import LoadShape
from mrapsim.load.users import User, task


class Steps(LoadShape):
    def tick(self) -> tuple[int, float] | None:
        elapsed = self.get_run_time()
        if elapsed < 5:
            return 5, 5.0
        if elapsed < 10:
            return 15, 10.0
        if elapsed < 15:
            return 5, 10.0
        return None


class Lister(User):
    @task
    async def list(self) -> None:
        await self.s3.list(max_keys=10)
