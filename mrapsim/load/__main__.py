"""`python -m mrapsim.load ...`: the same as `mrapsim load ...`."""

from __future__ import annotations

import argparse
import sys

from mrapsim.load.cli import add_load_parser, run_load


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mrapsim")
    commands = parser.add_subparsers(dest="command", required=True)
    add_load_parser(commands)
    args = parser.parse_args(["load", *(sys.argv[1:] if argv is None else argv)])
    return run_load(args)


if __name__ == "__main__":
    sys.exit(main())
