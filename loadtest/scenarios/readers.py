"""A Python scenario: think time, on_start/on_stop, checks (k6's), several user classes.

    mrapsim load -H https://localhost:8444/mraps3sample -f loadtest/scenarios/readers.py \\
        -u 10 -t 30s --threshold 'checks>0.99' --threshold 'read:p(95)<200'

A check that fails is counted (`checks` in the summary, the JSON and the HTML) without failing
the request; `--threshold 'checks>0.99'` turns a failing check into exit 99.
"""

from mrapsim.load.users import User, between, constant_pacing, task


class Reader(User):
    weight = 3
    wait_time = between(0.05, 0.2)  # think time after each task
    seed_sizes = (1024,)  # written once before the run, read by s3.get(size=1024)

    async def on_start(self) -> None:
        await self.s3.put(f"readers/{self.user_id}.txt", size=100, name="put_own")

    @task(5)
    async def read(self) -> None:
        response = await self.s3.get(size=1024)
        self.check(
            response,
            {
                "status is 200": lambda r: r.status == 200,
                "1 KiB body": lambda r: r.content_length == 1024,
                "has an ETag": lambda r: r.header("etag") is not None,
            },
        )

    @task(1)
    async def read_own(self) -> None:
        response = await self.s3.get(f"readers/{self.user_id}.txt")
        self.check(response, {"own object": lambda r: r.ok and len(r.body) == 100})

    async def on_stop(self) -> None:
        await self.s3.list(prefix="readers/", max_keys=10, name="list_on_stop")


class Lister(User):
    weight = 1
    wait_time = constant_pacing(0.5)  # a task every 0.5 s at most

    @task
    async def list(self) -> None:
        response = await self.s3.list(prefix="data/", max_keys=5)
        self.check(response, {"lists data/": lambda r: b"<Key>data/one.csv</Key>" in r.body})
