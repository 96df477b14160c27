"""`mixed`: S3 list/get/put and TLS handshakes, one in ten of them without SNI (what a proxy that
forgets SNI sends; the MRAP edge stalls those)."""

from mrapsim.load.users import User, task

SIZES = (1024, 16384)


class Mixed(User):
    seed_sizes = SIZES

    @task(10)
    async def list(self) -> None:
        await self.s3.list(max_keys=100)

    @task(10)
    async def get(self) -> None:
        await self.s3.get(size=self.rng.choice(SIZES))

    @task(5)
    async def put(self) -> None:
        await self.s3.put(size=1024)

    @task(9)
    async def handshake(self) -> None:
        await self.tls.handshake()

    @task(1)
    async def handshake_nosni(self) -> None:
        await self.tls.handshake(sni=False)
