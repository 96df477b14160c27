"""The server side of a forwarded connection's TLS: `ssl.SSLObject` over memory BIOs, driven here.

Why not `trio.SSLStream`: it supports renegotiation, half-closes and arbitrary concurrency and
pays for it on every call (three locks, conflict detectors, a retry loop with several
checkpoints); on the edge's new-connection path it was the largest share of the server's
samples after the handshake itself (benchmarks/profiles/). The edge needs less: one task
receiving (hypercorn's reader) while others send (the app's responses), TLS 1.2 or 1.3 without
renegotiation (the contexts set `OP_NO_RENEGOTIATION`), and `https_compatible` endings (a ragged
EOF ends the stream like close_notify). `mrapsim/load/tls.py` is the client-side twin, for
strictly sequential use.

Contract kept from `trio.SSLStream`, because hypercorn and the edge rely on it: errors are
`trio.BrokenResourceError` caused by the `ssl.SSLError` or transport error; `transport_stream`,
`do_handshake()` (a second call returns at once), `selected_alpn_protocol()` and `version()`.

Ordering: every byte OpenSSL queues for the peer is taken from the outgoing BIO and sent under
one lock, so two tasks' records reach the socket in the order OpenSSL produced them; the
receiving task never waits for that lock (its few bytes go out with the holder's).
"""

from __future__ import annotations

import ssl

import trio

RECEIVE_SIZE = 65536


class ServerTlsStream(trio.abc.Stream):
    def __init__(self, transport: trio.abc.Stream, context: ssl.SSLContext, received: bytes = b"") -> None:
        """`received`: what was already read from `transport` (the edge's peeked ClientHello),
        handed to OpenSSL as if it had just arrived."""
        self.transport_stream = transport
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        if received:
            self._incoming.write(received)
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self._send_lock = trio.Lock()
        self._handshaken = False
        self._broken: BaseException | None = None
        self._closed = False

    # -- what hypercorn and the edge ask of a TLS stream ----------------------------------------

    def selected_alpn_protocol(self) -> str | None:
        return self._tls.selected_alpn_protocol()

    def version(self) -> str | None:
        return self._tls.version()

    async def do_handshake(self) -> None:
        self._check_usable()
        if self._handshaken:
            await trio.lowlevel.checkpoint()
            return
        while True:
            try:
                self._tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                await self._flush()
                await self._fill()
            except ssl.SSLError as exc:
                await self._flush_quietly()  # our alert, if OpenSSL wrote one
                raise self._break(exc) from exc
        self._handshaken = True
        if self._tls.version() == "TLSv1.3":
            # What is left is the session tickets, which the client does not wait for: they go
            # out with the first response, one send instead of two (a loopback send cost more
            # than anything else on a new connection's path). TLS 1.2's last flight (Finished)
            # is waited for: it goes now.
            await trio.lowlevel.checkpoint()
        else:
            await self._flush()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        self._check_usable()
        if not self._handshaken:
            await self.do_handshake()
        size = max_bytes or RECEIVE_SIZE
        waited = False  # the transport's receive is a checkpoint: trio asks for one per call
        queued = self._outgoing.pending
        while True:
            try:
                data = self._tls.read(size)
            except ssl.SSLWantReadError:
                await self._fill()
                waited = True
                continue
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                # close_notify or a ragged EOF: both end the stream (HTTPS style). Nothing is
                # sent: OpenSSL queues an alert for a ragged EOF, which trio never sent either.
                if not waited:
                    await trio.lowlevel.checkpoint()
                return b""
            except ssl.SSLError as exc:
                await self._flush_quietly()
                raise self._break(exc) from exc
            if self._outgoing.pending > queued and not self._send_lock.locked():
                # This read made OpenSSL answer (a TLS 1.3 KeyUpdate). With the lock held, its
                # holder sends the answer after its own bytes; waiting for it here could stall
                # reading behind a slow writer. Tickets already queued wait for the next send.
                await self._flush()
            elif not waited:
                await trio.lowlevel.checkpoint()
            return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self._check_usable()
        if not self._handshaken:
            await self.do_handshake()
        try:
            self._tls.write(data)
        except ssl.SSLError as exc:
            raise self._break(exc) from exc
        await self._flush()

    async def wait_send_all_might_not_block(self) -> None:
        await self.transport_stream.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        """Close the transport without a close_notify, as `trio.SSLStream(https_compatible=True)`
        did here before: HTTP frames its messages, so clients do not wait for one, and the
        edge's observable behaviour stays what it was (a peer's close_notify is still read)."""
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        self._closed = True
        await self.transport_stream.aclose()

    # -- moving bytes between the BIOs and the transport ----------------------------------------

    async def _flush(self) -> None:
        """Send what OpenSSL queued, until nothing is left. Taken from the BIO under the lock,
        so concurrent senders keep OpenSSL's order, and whatever was queued while the lock was
        held goes out before it is released; a send interrupted midway leaves the stream
        broken, as in trio."""
        async with self._send_lock:
            while pending := self._outgoing.read():
                try:
                    await self.transport_stream.send_all(pending)
                except BaseException as exc:
                    self._broken = exc
                    if isinstance(exc, (trio.BrokenResourceError, trio.ClosedResourceError)):
                        raise trio.BrokenResourceError from exc
                    raise

    async def _flush_quietly(self) -> None:
        try:
            await self._flush()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async def _fill(self) -> None:
        try:
            data = await self.transport_stream.receive_some(RECEIVE_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise self._break(exc) from exc
        if data:
            self._incoming.write(data)
        else:
            self._incoming.write_eof()

    def _break(self, exc: BaseException) -> trio.BrokenResourceError:
        self._broken = exc
        return trio.BrokenResourceError(str(exc))

    def _check_usable(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the TLS stream was closed")
        if self._broken is not None:
            raise trio.BrokenResourceError("the TLS stream is broken") from self._broken
