"""`mrapsim load` command lines the load tests share."""

from __future__ import annotations

import os
import sys

from tests.mrapsim_process import MrapsimProcess


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


def env_without_credentials() -> dict[str, str]:
    """This environment without AWS_* and MRAPSIM_LOAD_* variables: the run uses its defaults."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MRAPSIM_LOAD_"))}
