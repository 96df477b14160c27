"""`nosni`: a new TLS connection per task without SNI (stalled by the MRAP edge)."""

from mrapsim.load.users import User, task


class NoSni(User):
    uses_s3 = False

    @task
    async def handshake_nosni(self) -> None:
        await self.tls.handshake(sni=False)
