"""`handshake`: a new TLS connection per task, with SNI, and no request."""

from mrapsim.load.users import User, task


class Handshake(User):
    uses_s3 = False

    @task
    async def handshake(self) -> None:
        await self.tls.handshake()
