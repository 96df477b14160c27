"""HTTP/2 for the harness: one h2 connection per user and server name, one stream at a time.

Users run tasks one after another, so a connection never has two streams open: multiplexing
would only matter for several requests in flight per user, which the closed model does not do.
The `h2` package (hyper-h2, already installed with hypercorn) does the framing; this module
drives it over a trio stream with the same `request()` contract as the HTTP/1.1 connection:
a `Response` or a `TaskFailure`. A GOAWAY that names a stream below ours means the server never
processed the request: that failure is marked retryable (a new connection is tried once).
"""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import trio

from mrapsim.load import failures
from mrapsim.load.client import ERROR_BODY_LIMIT, RECEIVE_SIZE, MeteredStream, Response
from mrapsim.tls.client_outcomes import classify


class Http2Connection:
    def __init__(self, stream: trio.abc.Stream, meter: MeteredStream) -> None:
        self.stream = stream
        self.meter = meter
        self.requests = 0
        self.reusable = True
        self.http = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.http.initiate_connection()

    async def aclose(self) -> None:
        await trio.aclose_forcefully(self.stream)

    async def request(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes, timeout: float
    ) -> Response:
        self.requests += 1
        try:
            with trio.move_on_after(timeout):
                return await self._exchange(method, target, headers, body)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self.reusable = False
            raise failures.TaskFailure(classify(exc).failure_class) from None
        except h2.exceptions.ProtocolError as exc:
            self.reusable = False
            raise failures.TaskFailure(failures.PROTOCOL, str(exc)) from None
        self.reusable = False
        raise failures.TaskFailure(failures.TIMEOUT)

    async def _flush(self) -> None:
        data = self.http.data_to_send()
        if data:
            await self.stream.send_all(data)

    async def _receive(self) -> list[h2.events.Event]:
        data = await self.stream.receive_some(RECEIVE_SIZE)
        if not data:
            self.reusable = False
            raise failures.TaskFailure(failures.CLOSED)
        return self.http.receive_data(bytes(data))

    async def _exchange(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> Response:
        http = self.http
        stream_id = http.get_next_available_stream_id()
        authority = next((v for k, v in headers if k == "host"), "")
        fields = [(":method", method), (":scheme", "https"), (":authority", authority), (":path", target)]
        fields.extend((k, v) for k, v in headers if k != "host")
        http.send_headers(stream_id, fields, end_stream=not body)
        await self._flush()
        response = _Exchange(stream_id)
        await self._send_body(stream_id, body, response)
        while not response.ended:
            self._handle(await self._receive(), response)
            await self._flush()
        status = response.status
        failure = failures.classify_response(status, response.body_head) if status >= 400 else None
        return Response(status, response.length, failure)

    async def _send_body(self, stream_id: int, body: bytes, response: _Exchange) -> None:
        """DATA frames within the peer's flow-control window; waits for WINDOW_UPDATEs."""
        view = memoryview(body)
        while view:
            window = min(self.http.local_flow_control_window(stream_id), self.http.max_outbound_frame_size)
            if window <= 0:
                self._handle(await self._receive(), response)
                await self._flush()
                continue
            chunk, view = view[:window], view[window:]
            self.http.send_data(stream_id, bytes(chunk), end_stream=not view)
            await self._flush()

    def _handle(self, events: list[h2.events.Event], response: _Exchange) -> None:
        for event in events:
            if isinstance(event, h2.events.ResponseReceived) and event.stream_id == response.stream_id:
                for name, value in event.headers or []:
                    if name in (":status", b":status"):
                        response.status = int(value)
            elif isinstance(event, h2.events.DataReceived) and event.stream_id == response.stream_id:
                data = event.data or b""
                response.length += len(data)
                if len(response.body_head) < ERROR_BODY_LIMIT:
                    response.body_head += data[: ERROR_BODY_LIMIT - len(response.body_head)]
                self.http.acknowledge_received_data(event.flow_controlled_length or 0, response.stream_id)
            elif isinstance(event, h2.events.StreamEnded) and event.stream_id == response.stream_id:
                response.ended = True
            elif isinstance(event, h2.events.StreamReset) and event.stream_id == response.stream_id:
                raise failures.TaskFailure(failures.h2_reset(str(event.error_code)))
            elif isinstance(event, h2.events.ConnectionTerminated):
                self.reusable = False
                last = event.last_stream_id if event.last_stream_id is not None else 0
                if last < response.stream_id:
                    raise failures.TaskFailure(failures.CLOSED, "GOAWAY before our stream", retryable=True)


class _Exchange:
    """The response being read on one stream."""

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id
        self.status = 0
        self.length = 0
        self.body_head = b""
        self.ended = False
