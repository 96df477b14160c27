"""Log lines while a server batches its writes (`mrapsim/logs.py`): what one scheduler pass logs
is written together at the next, in order, warnings at once, nothing lost when batching stops."""

from __future__ import annotations

import io
import logging

import trio

from mrapsim.logs import BatchingStreamHandler, TextFormatter, batch_log_writes


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def test_lines_are_written_together_in_order_and_warnings_at_once() -> None:
    stream = CountingStream()
    handler = BatchingStreamHandler(stream)
    handler.setFormatter(TextFormatter())
    logger = logging.getLogger("mrapsim")
    saved = logger.handlers[:], logger.level, logger.propagate
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    seen: dict[str, object] = {}

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(batch_log_writes)
            for index in range(50):
                logger.info("line %d", index)
            seen["before"] = (stream.getvalue(), stream.writes)
            logger.warning("a warning")  # written at once, after the 50 pending lines
            seen["warning"] = stream.getvalue()
            logger.info("after the warning")
            await trio.sleep(0)  # the next pass of the scheduler
            await trio.sleep(0)
            seen["flushed"] = stream.getvalue()
            logger.info("pending when batching stops")
            nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    finally:
        logger.handlers[:], level, logger.propagate = saved
        logger.setLevel(level)
    assert seen["before"] == ("", 0)
    warning = seen["warning"]
    assert isinstance(warning, str) and warning.count("\n") == 51 and warning.rstrip().endswith("a warning")
    assert "line 0\n" in warning and warning.index("line 49") < warning.index("a warning")
    assert isinstance(seen["flushed"], str) and seen["flushed"].endswith("after the warning\n")
    assert stream.getvalue().endswith("pending when batching stops\n")
    assert stream.writes == 4  # 53 lines: the 50, the warning, the one after it, the last one


def test_without_a_batching_server_every_line_is_written_at_once() -> None:
    stream = CountingStream()
    handler = BatchingStreamHandler(stream)
    handler.setFormatter(TextFormatter())
    record = logging.LogRecord("mrapsim.test", logging.INFO, __file__, 1, "hello", None, None)
    handler.handle(record)
    assert stream.getvalue().endswith("hello\n") and stream.writes == 1
