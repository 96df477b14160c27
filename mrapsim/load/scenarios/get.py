"""`get`: GetObject of a 1 KiB object written before the run."""

from mrapsim.load.users import User, task


class Get(User):
    seed_sizes = (1024,)

    @task
    async def get(self) -> None:
        await self.s3.get(size=1024)
