"""Run one fuzz target under atheris: `python -m fuzz.run TARGET [libFuzzer options] [CORPUS...]`,
for example `python -m fuzz.run sigv4 -max_total_time=60 /tmp/sigv4 fuzz/corpus/sigv4`
(new inputs go to the first corpus directory; keep the committed seeds second)."""

from __future__ import annotations

import sys

import atheris


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        sys.exit(__doc__)
    name = sys.argv.pop(1)
    with atheris.instrument_imports(include=["mrapsim"]):
        from fuzz.targets import TARGETS
    if name not in TARGETS:
        sys.exit(f"unknown target {name!r}; one of {', '.join(TARGETS)}")
    atheris.Setup(sys.argv, TARGETS[name])
    atheris.Fuzz()


if __name__ == "__main__":
    main()
