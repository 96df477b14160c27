"""`mrapsim load` command lines the load tests share."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tests.mrapsim_process import MrapsimProcess

MRAP_HOST = "mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com"


def s3_load_command(mrapsim: MrapsimProcess, *args: str) -> list[str]:
    """`mrapsim load` against `mrapsim`'s s3 listener (the mraps3sample bucket), trusting its CA."""
    return [
        sys.executable,
        "-m",
        "mrapsim.load",
        "-H",
        f"https://localhost:{mrapsim.port('s3')}/mraps3sample",
        "--ca-bundle",
        str(mrapsim.ca),
        *args,
    ]


def mrap_target(port: int, ca: Path) -> list[str]:
    """`mrapsim load` options for the MRAP listener on loopback `port`: the MRAP host name as the
    target (its SNI and Host), connecting to 127.0.0.1, trusting `ca`."""
    return ["--target", f"https://{MRAP_HOST}:{port}", "--connect", f"127.0.0.1:{port}", "--ca-bundle", str(ca)]


def env_without_credentials() -> dict[str, str]:
    """This environment without AWS_* and MRAPSIM_LOAD_* variables: the run uses its defaults."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MRAPSIM_LOAD_"))}
