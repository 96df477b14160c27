"""`churn`: GetObject on a new TLS connection each time (handshake cost in every request)."""

from mrapsim.load.users import User, task


class Churn(User):
    seed_sizes = (1024,)

    @task
    async def get_new_conn(self) -> None:
        await self.s3.get(size=1024, connection="new")
