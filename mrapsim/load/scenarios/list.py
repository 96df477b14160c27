"""`list`: ListObjectsV2 (max-keys 100) on keep-alive connections."""

from mrapsim.load.users import User, task


class List(User):
    @task
    async def list(self) -> None:
        await self.s3.list(max_keys=100)
