"""`head`: HeadObject of a 1 KiB object written before the run."""

from mrapsim.load.users import User, task


class Head(User):
    seed_sizes = (1024,)

    @task
    async def head(self) -> None:
        await self.s3.head(size=1024)
