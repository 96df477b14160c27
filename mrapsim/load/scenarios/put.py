"""`put`: PutObject of 1 KiB (100 keys per user, overwritten in turn)."""

from mrapsim.load.users import User, task


class Put(User):
    @task
    async def put(self) -> None:
        await self.s3.put(size=1024)
