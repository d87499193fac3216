"""Restart backoff and crash-loop detection for one project's worker.

A worker that dies is restarted on the next request, but not in a tight loop:
each crash doubles the wait before the next start (1 s, 2 s, 4 s ... 60 s), and
the wait resets once a worker has stayed up for five healthy minutes.  Five
crashes within ten minutes mean restarting will not help (a corrupt index, a
broken install, a limit set too low): the project is marked crash-loop and
requests fail fast with the reason until the user runs ``ragexctl start``.

Pure logic with an injected clock so the windows can be unit-tested without
sleeping.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

Clock = Callable[[], float]


@dataclass
class BackoffPolicy:
    base: float = 1.0            # first restart delay
    maximum: float = 60.0        # cap of the doubling delay
    healthy_reset: float = 300.0  # uptime after which the delay starts over
    loop_crashes: int = 5        # this many crashes ...
    loop_window: float = 600.0   # ... within this many seconds = crash loop


@dataclass
class RestartTracker:
    """Crash history of one project.  Times come from ``clock`` (monotonic seconds)."""

    policy: BackoffPolicy = field(default_factory=BackoffPolicy)
    clock: Clock = time.monotonic
    crashes: deque[float] = field(default_factory=deque)
    delay: float = 0.0               # wait applied after the last crash
    next_start_at: float = 0.0       # no start before this time
    started_at: float | None = None  # when the current worker started
    crash_loop: bool = False
    total_crashes: int = 0

    def record_start(self) -> None:
        self.started_at = self.clock()

    def record_stop(self) -> None:
        """A requested stop (idle, user): not a crash; keeps the history."""
        self._maybe_reset()
        self.started_at = None

    def _maybe_reset(self) -> None:
        now = self.clock()
        if self.started_at is not None and now - self.started_at >= self.policy.healthy_reset:
            self.delay = 0.0

    def note_healthy(self) -> None:
        """Called periodically while a worker runs: a long healthy run resets the delay."""
        self._maybe_reset()

    def record_crash(self) -> bool:
        """Register a crash now; returns True when this crash makes a crash loop."""
        self._maybe_reset()
        now = self.clock()
        self.started_at = None
        self.total_crashes += 1
        self.crashes.append(now)
        while self.crashes and now - self.crashes[0] > self.policy.loop_window:
            self.crashes.popleft()
        self.delay = (self.policy.base if self.delay <= 0
                      else min(self.policy.maximum, self.delay * 2))
        self.next_start_at = now + self.delay
        if len(self.crashes) >= self.policy.loop_crashes:
            self.crash_loop = True
        return self.crash_loop

    def wait(self) -> float:
        """Seconds until a restart is allowed (0 = now)."""
        return max(0.0, self.next_start_at - self.clock())

    def recent_crashes(self) -> int:
        now = self.clock()
        return sum(1 for t in self.crashes if now - t <= self.policy.loop_window)

    def reset(self) -> None:
        """Forget everything: the user asked for a fresh start (``ragexctl start``)."""
        self.crashes.clear()
        self.delay = 0.0
        self.next_start_at = 0.0
        self.crash_loop = False
