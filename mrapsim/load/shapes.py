"""How many users (or arrivals per second) a run wants at each moment.

- k6 `stages`: `--stages 10s:20,10s:20,10s:0` ramps linearly from the previous target (0 at
  the start) to each stage's target over its duration: users, or with `/s` arrivals per second
  (`--stages 10s:50/s,20s:50/s`: k6's ramping-arrival-rate; `--users` caps concurrency).
- A Locust-style shape class in a Python scenario file: `tick()` returns `(users, spawn_rate)`
  or None to stop, asked once a second; `self.get_run_time()` is the seconds since the start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mrapsim.config import parse_duration


@dataclass(frozen=True)
class Stage:
    duration: float
    target: float


@dataclass(frozen=True)
class Stages:
    kind: str  # "users" or "rate"
    stages: tuple[Stage, ...]

    @property
    def total(self) -> float:
        return sum(s.duration for s in self.stages)

    @property
    def peak(self) -> int:
        return math.ceil(max(s.target for s in self.stages))

    def target_at(self, elapsed: float) -> float | None:
        """The linearly interpolated target at `elapsed` seconds; None after the last stage."""
        start = 0.0
        previous = 0.0
        for stage in self.stages:
            if elapsed < start + stage.duration:
                fraction = (elapsed - start) / stage.duration if stage.duration else 1.0
                return previous + (stage.target - previous) * fraction
            start += stage.duration
            previous = stage.target
        return None

    def arrival_times(self) -> list[float]:
        """Rate stages: the offsets of every arrival, where the integral of the rate reaches
        1, 2, 3… (the exact solution on each linear piece)."""
        times: list[float] = []
        start, previous, carried = 0.0, 0.0, 0.0  # carried: arrivals' fraction owed so far
        for stage in self.stages:
            r0, r1, d = previous, stage.target, stage.duration
            area = (r0 + r1) / 2 * d
            n = 1
            while carried + area >= n - 1e-9 and d > 0:
                need = n - carried  # arrivals to accumulate inside this stage
                slope = (r1 - r0) / d
                if abs(slope) < 1e-12:
                    t = need / r0 if r0 > 0 else d
                else:
                    t = (-r0 + math.sqrt(max(0.0, r0 * r0 + 2 * slope * need))) / slope
                times.append(start + min(t, d))
                n += 1
            carried = carried + area - (n - 1)
            start += d
            previous = r1
        return times


def parse_stages(values: list[str] | None) -> Stages | None:
    """`["10s:20,10s:0"]` or several `DUR:TARGET` values; None when there are none."""
    items = [part.strip() for value in values or [] for part in value.split(",") if part.strip()]
    if not items:
        return None
    stages = []
    kinds = set()
    for item in items:
        duration, sep, target = item.partition(":")
        if not sep:
            raise ValueError(f"--stages {item!r}: write DURATION:TARGET, like 10s:20 or 30s:100/s")
        rate = target.strip().endswith("/s")
        kinds.add("rate" if rate else "users")
        try:
            value = float(target.strip().removesuffix("/s"))
        except ValueError:
            raise ValueError(f"--stages {item!r}: the target is a number of users or N/s") from None
        if value < 0:
            raise ValueError(f"--stages {item!r}: the target must be 0 or more")
        stages.append(Stage(parse_duration(duration.strip(), f"--stages {item!r}"), value))
    if len(kinds) > 1:
        raise ValueError("--stages: all users or all arrival rates (N/s), not both")
    result = Stages(kinds.pop(), tuple(stages))
    if result.total <= 0:
        raise ValueError("--stages: the stages last no time")
    if result.peak <= 0:
        raise ValueError("--stages: no stage has a target above 0")
    return result


class LoadShape:
    """Subclass in a scenario file and define `tick` (Locust's LoadTestShape)."""

    def __init__(self, started: float = 0.0) -> None:
        self.started = started
        self.now = started

    def get_run_time(self) -> float:
        return self.now - self.started

    def tick(self) -> tuple[int, float] | None:
        raise NotImplementedError
